//! What the broker keeps of a request it has taken, to send it again or answer it: its client,
//! request id, service and body, copied into one buffer of its own. Frames over 8 KiB are kept
//! as shared views instead of copies (they are most of their read buffer anyway).
//!
//! Copying the few small frames costs a memcpy (into the struct itself up to `INLINE` bytes, so
//! a typical request allocates nothing); keeping `Bytes` views instead cost an atomic reference
//! count per frame twice over, and kept the read buffers they point into alive for as long as
//! the request was in flight.

use bytes::Bytes;

use crate::broker::wire;
use crate::socket::{Message, COMPACT_FRAME_MAX};

/// A length word's top bit: the frame is `large[index]`, not in `data`.
const LARGE: u32 = 1 << 31;
/// Kept frames up to this many bytes (with their length words) live inside the struct.
pub const INLINE: usize = 128;

/// The encoded frames: inside the struct when they fit, else on the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Vec<u8>),
}

/// A taken request's client, request id, service and body (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Per frame: a little-endian u32 length (or `LARGE | index`), then the frame's bytes.
    data: Data,
    large: Vec<Bytes>,
}

impl Kept {
    /// Keeps `[_, CLIENT, "", 0x02, REQ_ID, SERVICE, BODY...]` (a checked client request) as
    /// `[CLIENT, REQ_ID, SERVICE, BODY...]`.
    pub fn from_request(request: &Message) -> Self {
        let frames = || std::iter::once(&request[1]).chain(&request[4..]);
        let size: usize = frames().map(|f| 4 + if f.len() > COMPACT_FRAME_MAX { 0 } else { f.len() }).sum();
        let mut data = Data::with_capacity(size);
        let mut large = Vec::new();
        for frame in frames() {
            if frame.len() > COMPACT_FRAME_MAX {
                data.extend(&(LARGE | large.len() as u32).to_le_bytes());
                large.push(frame.clone());
            } else {
                data.extend(&(frame.len() as u32).to_le_bytes());
                data.extend(frame);
            }
        }
        Self { data, large }
    }

    /// The kept frames in order: client, request id, service, body.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.data.as_slice();
        std::iter::from_fn(move || {
            let (word, tail) = rest.split_first_chunk::<4>()?;
            let word = u32::from_le_bytes(*word);
            if word & LARGE != 0 {
                rest = tail;
                return self.large.get((word & !LARGE) as usize).map(|b| &b[..]);
            }
            let (frame, tail) = tail.split_at_checked(word as usize)?;
            rest = tail;
            Some(frame)
        })
    }

    /// The client's routing id.
    pub fn client(&self) -> &[u8] {
        self.frames().next().unwrap_or_default()
    }

    /// The request id the client chose.
    pub fn req_id(&self) -> &[u8] {
        self.frames().nth(1).unwrap_or_default()
    }

    /// The service the request is for.
    pub fn service(&self) -> &[u8] {
        self.frames().nth(2).unwrap_or_default()
    }

    /// Whether this is the request (client, request id).
    pub fn is(&self, client: &[u8], req_id: &[u8]) -> bool {
        let mut frames = self.frames();
        frames.next() == Some(client) && frames.next() == Some(req_id)
    }

    /// The request again as received: `[in_pipe_identity, CLIENT, "", 0x02, REQ_ID, SERVICE, BODY...]`.
    pub fn to_request(&self, in_pipe_identity: Bytes) -> Message {
        let mut request = vec![in_pipe_identity];
        for (i, frame) in self.frames().enumerate() {
            if i == 1 {
                request.extend([Bytes::new(), Bytes::from_static(wire::CLIENT)]);
            }
            request.push(Bytes::copy_from_slice(frame));
        }
        request
    }

    /// Bytes held, the struct's own included.
    pub fn cost(&self) -> usize {
        let heap = match &self.data {
            Data::Inline { .. } => 0,
            Data::Heap(data) => data.capacity(),
        };
        std::mem::size_of::<Self>() + heap + self.large.iter().map(|b| b.len() + 32).sum::<usize>()
    }
}

impl Data {
    fn with_capacity(size: usize) -> Self {
        match size <= INLINE {
            true => Data::Inline { len: 0, bytes: [0; INLINE] },
            false => Data::Heap(Vec::with_capacity(size)),
        }
    }

    /// Appends `more`; the capacity asked for at creation is never exceeded.
    fn extend(&mut self, more: &[u8]) {
        match self {
            Data::Inline { len, bytes } => {
                let start = usize::from(*len);
                let end = (start + more.len()).min(INLINE);
                bytes[start..end].copy_from_slice(&more[..end - start]);
                *len = end as u8;
            }
            Data::Heap(data) => data.extend_from_slice(more),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Data::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Data::Heap(data) => data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    #[test]
    fn a_request_comes_back_as_it_was_with_large_frames_shared() {
        let large = Bytes::from(vec![7u8; COMPACT_FRAME_MAX + 1]);
        let request =
            vec![b(b"pipe"), b(b"client"), b(b""), b(b"\x02"), b(b"r1"), b(b"svc"), b(b""), large.clone()];
        let kept = Kept::from_request(&request);
        assert_eq!((kept.client(), kept.req_id(), kept.service()), (&b"client"[..], &b"r1"[..], &b"svc"[..]));
        assert!(kept.is(b"client", b"r1") && !kept.is(b"client", b"r2"));
        assert_eq!(kept.to_request(b(b"pipe")), request);
        assert_eq!(kept.large[0].as_ptr(), large.as_ptr(), "not copied");
        assert!(kept.cost() < COMPACT_FRAME_MAX + 300);
    }

    #[test]
    fn small_requests_stay_inline_and_bigger_ones_go_to_the_heap() {
        for body in [16, INLINE, 4 * INLINE] {
            let request =
                vec![b(b"p"), b(b"c"), b(b""), b(b"\x02"), b(b"r"), b(b"s"), Bytes::from(vec![1u8; body])];
            let kept = Kept::from_request(&request);
            assert_eq!(matches!(kept.data, Data::Inline { .. }), body + 4 * 4 + 3 <= INLINE, "{body}");
            assert_eq!(kept.to_request(b(b"p")), request);
        }
    }
}
