//! One ZMTP connection as a state machine: bytes in, events out; messages in, bytes out.
//!
//! The caller owns the socket and the clock. It feeds received bytes with `handle_input`, takes
//! `Event`s from `poll_event`, writes what `encoder()` holds, and calls `handle_timeout(now)` when
//! `poll_timeout()` says. Greeting and READY are queued at creation, before anything is read
//! (RFC 23 lets both sides send first; libzmq waits for our greeting bytes before sending its own).
//!
//! With `Config::curve` (the `curve` feature) the greeting names CURVE, the handshake is RFC 26's
//! (`curve::Link`), and after it every frame travels sealed in a MESSAGE command: the decoder
//! then sees only commands, and the message limits are applied here to the frames they hold.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use crate::command::Command;
use crate::encoder::Encoder;
use crate::error::{Error, GreetingError, NotReady, UnexpectedFrame};
use crate::frame::{Frame, FrameDecoder, Limits};
use crate::greeting::{Greeting, GreetingReader, Mechanism};
use crate::heartbeat::{Heartbeat, HeartbeatTimers};
use crate::metadata::{self, Metadata};
use crate::socket_type::SocketType;

/// A multipart message: its frames in order.
pub type Message = Vec<Bytes>;

/// Frames a multipart message's `Vec` starts with: EZ Arch messages have up to about 10 frames
/// once the pipes' identity frames are on, so this avoids regrowing it on the way.
const MESSAGE_CAPACITY: usize = 12;

/// PONGs are not queued while more than this waits to be written: a peer that pings without
/// reading could otherwise grow our output queue without bound.
pub const MAX_PENDING_FOR_PONG: usize = 4 << 20;

/// libzmq's `ZMQ_HANDSHAKE_IVL` default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How this end of the connection presents itself.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our socket type, sent as `Socket-Type` in READY.
    pub socket_type: SocketType,
    /// Sent as `Identity` by DEALER, ROUTER and REQ (empty means "let the ROUTER pick one").
    pub identity: Bytes,
    /// Extra READY properties, such as `X-*` application metadata.
    pub metadata: Metadata,
    /// The greeting's as-server bit under NULL, where it is informational (under CURVE the
    /// `Curve` variant sets it).
    pub as_server: bool,
    /// Caps on what the peer may declare.
    pub limits: Limits,
    /// How long the greeting and handshake may take before `Error::HandshakeTimeout`.
    pub handshake_timeout: Duration,
    /// When to send PINGs, and when silence closes the connection.
    pub heartbeat: Heartbeat,
    /// CURVE instead of NULL: our keys, and the server's key or who may connect.
    #[cfg(feature = "curve")]
    pub curve: Option<crate::curve::Curve>,
}

impl Config {
    /// A NULL configuration for `socket_type`: no identity or extra metadata, the default
    /// limits and handshake timeout, heartbeats off.
    pub fn new(socket_type: SocketType) -> Self {
        Self {
            socket_type,
            identity: Bytes::new(),
            metadata: Metadata::new(),
            as_server: false,
            limits: Limits::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            heartbeat: Heartbeat::default(),
            #[cfg(feature = "curve")]
            curve: None,
        }
    }
}

/// What the handshake learned about the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's socket type (one that can talk to ours).
    pub socket_type: SocketType,
    /// The peer's `Identity` property; empty when it sent none.
    pub identity: Bytes,
    /// Every property of the peer's READY, `Socket-Type` and `Identity` included.
    pub metadata: Metadata,
    /// The major version from the peer's greeting.
    pub major: u8,
    /// The minor version from the peer's greeting.
    pub minor: u8,
    /// Under CURVE, the peer's permanent public key (a client's is what an allowlist checks).
    pub curve_key: Option<[u8; 32]>,
}

/// What a session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// READY exchanged; the connection may now carry messages.
    HandshakeComplete(PeerInfo),
    /// A complete message from the peer.
    Message(Message),
    /// A subscription, from a SUBSCRIBE command or (publisher side) a `\x01topic` message.
    Subscribe(Bytes),
    /// A cancellation, from a CANCEL command or (publisher side) a `\x00topic` message.
    Cancel(Bytes),
    /// The peer pinged us. Its PONG is queued, unless more than `MAX_PENDING_FOR_PONG` bytes
    /// already wait to be written (a peer that pings but never reads).
    Ping {
        /// The TTL the peer asked for; zero when none.
        ttl: Duration,
        /// The PING's context (at most 16 bytes).
        context: Bytes,
    },
    /// The peer answered one of our PINGs.
    Pong {
        /// The context it echoed.
        context: Bytes,
    },
}

/// Where the connection is; each phase names what it awaits.
#[derive(Debug)]
enum Phase {
    AwaitGreeting(GreetingReader),
    AwaitReady { peer: Greeting },
    Active { peer: Greeting },
    Closed(Error),
}

/// One ZMTP connection: handshake, framing and heartbeats, and CURVE when configured.
#[derive(Debug)]
pub struct Session {
    config: Config,
    phase: Phase,
    decoder: FrameDecoder,
    encoder: Encoder,
    events: VecDeque<Event>,
    /// Frames of the message in progress; bounded by the decoder's limits.
    partial: Message,
    handshake_deadline: Option<Instant>,
    heartbeat: HeartbeatTimers,
    /// CURVE's handshake, then its MESSAGE channel.
    #[cfg(feature = "curve")]
    curve: Option<Box<crate::curve::Link>>,
}

impl Session {
    /// Starts a connection and queues our greeting and READY.
    pub fn new(config: Config, now: Instant) -> Self {
        let mut encoder = Encoder::new();
        #[allow(unused_mut)]
        let mut failed = None;
        #[cfg(feature = "curve")]
        let curve = config.curve.as_ref().and_then(|curve| {
            let as_server = matches!(curve, crate::curve::Curve::Server { .. });
            encoder.push_raw(&Greeting::ours(Mechanism::Curve, as_server).encode());
            match crate::curve::Link::new(curve, config.limits.max_metadata_size) {
                Ok((link, hello)) => {
                    if let Some(hello) = hello {
                        encoder.push_command_body(&hello);
                    }
                    Some(Box::new(link))
                }
                Err(e) => {
                    failed = Some(Error::Curve(e));
                    None
                }
            }
        });
        #[cfg(feature = "curve")]
        let null = config.curve.is_none();
        #[cfg(not(feature = "curve"))]
        let null = true;
        if null {
            encoder.push_raw(&Greeting::ours(Mechanism::Null, config.as_server).encode());
            encoder.push_command(&Command::Ready(ready_metadata(&config)));
        }
        Self {
            #[cfg(feature = "curve")]
            curve,
            decoder: match null {
                true => FrameDecoder::for_handshake(config.limits),
                false => FrameDecoder::for_curve_handshake(config.limits),
            },
            phase: match failed {
                Some(e) => Phase::Closed(e),
                None => Phase::AwaitGreeting(GreetingReader::default()),
            },
            encoder,
            events: VecDeque::new(),
            partial: Vec::new(),
            handshake_deadline: now.checked_add(config.handshake_timeout),
            heartbeat: HeartbeatTimers::new(config.heartbeat),
            config,
        }
    }

    /// Why the session failed, if it has: a CURVE client that could not even start its
    /// handshake (its provider's random source failed) is failed from creation, and the caller
    /// should close it at once.
    pub fn failure(&self) -> Option<&Error> {
        match &self.phase {
            Phase::Closed(e) => Some(e),
            _ => None,
        }
    }

    /// True once READY has been exchanged and until the session fails.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Active { .. })
    }

    /// True until the peer's whole greeting has been read. A CURVE server's caller reads at
    /// most `needed` bytes while it is, so the costly HELLO after a greeting never rides in the
    /// same read as the free greeting, and it can pace the handshake's key exchanges.
    pub fn awaits_greeting(&self) -> bool {
        matches!(self.phase, Phase::AwaitGreeting(_))
    }

    /// Consumes whatever complete units `buf` holds; a partial frame stays in `buf` for next time.
    /// An error is final: the connection must be closed (after flushing `encoder()` if wanted).
    pub fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), Error> {
        if let Phase::Closed(e) = &self.phase {
            return Err(e.clone());
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.heartbeat.on_input();
        let result = self.consume(buf, now);
        if let Err(e) = &result {
            self.phase = Phase::Closed(e.clone());
        }
        result
    }

    /// Bytes needed before the session can make progress: a hint for sizing the next read.
    pub fn needed(&self, buf: &[u8]) -> usize {
        match &self.phase {
            Phase::AwaitGreeting(reader) => reader.remaining(),
            _ => self.decoder.needed(buf),
        }
    }

    /// Bytes of the frames received so far of a message still in progress (held by the session
    /// until its last frame arrives).
    pub fn buffered_message_bytes(&self) -> usize {
        self.partial.iter().map(|frame| frame.len()).sum()
    }

    /// The oldest event not yet taken, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues a message. Refused until the handshake completes: peers attach only then.
    pub fn send(&mut self, frames: &[Bytes]) -> Result<(), NotReady> {
        self.active_peer()?;
        #[cfg(feature = "curve")]
        if let Some(link) = &mut self.curve {
            let last = frames.len().saturating_sub(1);
            for (i, frame) in frames.iter().enumerate() {
                let more = if i < last { crate::curve::channel::MORE } else { 0 };
                if let Some(sealed) = link.seal(more, frame) {
                    self.encoder.push_framed(sealed);
                }
            }
            return Ok(());
        }
        self.encoder.push_message(frames);
        Ok(())
    }

    /// Queues a command: sealed in a MESSAGE under CURVE once the handshake is done, as it is.
    fn push_command(&mut self, command: &Command) {
        #[cfg(feature = "curve")]
        if let Some(link) = self.curve.as_mut().filter(|l| l.is_established()) {
            let mut framed = BytesMut::new();
            command.encode(&mut framed);
            let header = if framed[0] & crate::frame::flags::LONG != 0 { 9 } else { 2 };
            if let Some(sealed) = link.seal(crate::curve::channel::COMMAND, &framed[header..]) {
                self.encoder.push_framed(sealed);
            }
            return;
        }
        self.encoder.push_command(command);
    }

    /// Under CURVE, on the server side, the client's permanent public key (what an allowlist
    /// checks); `None` on a client-side or NULL session.
    pub fn curve_client_key(&self) -> Option<[u8; 32]> {
        #[cfg(feature = "curve")]
        if matches!(self.config.curve, Some(crate::curve::Curve::Server { .. })) {
            return self.curve_key();
        }
        None
    }

    /// Under CURVE, the peer's permanent public key once the handshake completed.
    pub fn curve_key(&self) -> Option<[u8; 32]> {
        #[cfg(feature = "curve")]
        if let Some(link) = &self.curve {
            return link.peer_key();
        }
        None
    }

    /// Sends a subscription: a SUBSCRIBE command to 3.1 peers, a `\x01topic` message to 3.0 ones.
    pub fn subscribe(&mut self, topic: &Bytes) -> Result<(), NotReady> {
        self.send_subscription(true, topic)
    }

    /// Cancels a subscription, in the form the peer's version expects.
    pub fn cancel(&mut self, topic: &Bytes) -> Result<(), NotReady> {
        self.send_subscription(false, topic)
    }

    /// Queues an ERROR command (at most 255 bytes of reason; sealed once CURVE traffic has
    /// started); the caller then closes.
    pub fn send_error(&mut self, reason: &[u8]) {
        self.push_command(&Command::Error { reason: Bytes::copy_from_slice(reason) });
    }

    /// The bytes waiting to be written.
    pub fn encoder(&mut self) -> &mut Encoder {
        &mut self.encoder
    }

    /// How many bytes wait to be written.
    pub fn pending_output(&self) -> usize {
        self.encoder.pending()
    }

    /// Bytes the output side holds: what waits to be written and the batch buffer's room.
    pub fn output_footprint(&self) -> usize {
        self.encoder.footprint()
    }

    /// The next instant at which `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closed(_) => None,
            Phase::Active { .. } => self.heartbeat.next_deadline(),
            _ => self.handshake_deadline,
        }
    }

    /// Fires due timers: handshake and heartbeat timeouts (fatal) and PINGs to send.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        let result = match &self.phase {
            Phase::Closed(e) => return Err(e.clone()),
            Phase::Active { .. } => self.heartbeat.on_timeout(now).map(|ping| {
                if let Some(ping) = ping {
                    self.push_command(&ping);
                }
            }),
            _ if self.handshake_deadline.is_some_and(|d| d <= now) => Err(Error::HandshakeTimeout),
            _ => Ok(()),
        };
        if let Err(e) = &result {
            self.phase = Phase::Closed(e.clone());
        }
        result
    }

    fn active_peer(&self) -> Result<Greeting, NotReady> {
        match self.phase {
            Phase::Active { peer } => Ok(peer),
            _ => Err(NotReady),
        }
    }

    fn send_subscription(&mut self, subscribe: bool, topic: &Bytes) -> Result<(), NotReady> {
        let peer = self.active_peer()?;
        if peer.agreed_minor() >= 1 {
            let topic = topic.clone();
            let command = if subscribe { Command::Subscribe { topic } } else { Command::Cancel { topic } };
            self.push_command(&command);
        } else {
            let mut body = BytesMut::with_capacity(1 + topic.len());
            body.extend_from_slice(&[u8::from(subscribe)]);
            body.extend_from_slice(topic);
            return self.send(&[body.freeze()]);
        }
        Ok(())
    }

    fn consume(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), Error> {
        if let Phase::AwaitGreeting(reader) = &mut self.phase {
            let (taken, greeting) = reader.feed(buf)?;
            buf.advance(taken);
            let Some(peer) = greeting else { return Ok(()) };
            let ours = self.mechanism();
            if peer.mechanism != ours {
                return Err(GreetingError::MechanismMismatch { ours, theirs: peer.mechanism }.into());
            }
            self.phase = Phase::AwaitReady { peer };
        }
        while let Some(frame) = self.decoder.decode(buf)? {
            #[cfg(feature = "curve")]
            if self.curve.is_some() {
                self.on_curve_frame(frame, now)?;
                continue;
            }
            match self.phase {
                Phase::AwaitReady { peer } => self.on_handshake_frame(peer, frame, now)?,
                _ => self.on_frame(frame, now)?,
            }
        }
        Ok(())
    }

    /// The mechanism this end speaks.
    fn mechanism(&self) -> Mechanism {
        #[cfg(feature = "curve")]
        if self.curve.is_some() {
            return Mechanism::Curve;
        }
        Mechanism::Null
    }

    /// Under CURVE: a handshake command, or after it a MESSAGE whose frame is opened and then
    /// handled like any frame, the message limits applied to it here.
    #[cfg(feature = "curve")]
    fn on_curve_frame(&mut self, frame: Frame, now: Instant) -> Result<(), Error> {
        use crate::curve::channel::{COMMAND, MORE};
        use crate::error::CurveError;
        let Some(link) = self.curve.as_mut() else { return Ok(()) };
        let Phase::AwaitReady { peer } = self.phase else {
            let (payload_flags, body) = link.open(&frame.body)?;
            let mut flag_bits = 0;
            if payload_flags & MORE != 0 {
                flag_bits |= crate::frame::flags::MORE;
            }
            if payload_flags & COMMAND != 0 {
                flag_bits |= crate::frame::flags::COMMAND;
                let limit = self.config.limits.max_command_size;
                if body.len() > limit {
                    let declared = body.len() as u64;
                    return Err(crate::error::FrameError::CommandTooLarge { declared, limit }.into());
                }
            } else {
                self.check_message_limits(body.len())?;
            }
            return self.on_frame(Frame { flags: flag_bits, body }, now);
        };
        if !frame.is_command() {
            return Err(CurveError::NotAMessage.into());
        }
        let ours = ready_metadata(&self.config);
        let (progress, result) = match link.on_handshake_command(&frame.body, &ours) {
            Ok(progress) => (progress, Ok(())),
            Err((progress, e)) => (progress, Err(e)),
        };
        if let (Some(metadata), Some(crate::curve::Curve::Server { .. })) =
            (&progress.done, &self.config.curve)
        {
            // The server checks the client's socket type before it answers READY (as libzmq
            // does in INITIATE): a refused type gets ERROR instead.
            if let Err(e) = self.peer_type(metadata) {
                let reason = crate::curve::handshake::error_command(b"Invalid socket type");
                self.encoder.push_command_body(&reason);
                return Err(e);
            }
        }
        for command in &progress.send {
            self.encoder.push_command_body(command);
        }
        result?;
        let Some(metadata) = progress.done else { return Ok(()) };
        self.decoder.allow_overhead(crate::curve::channel::OVERHEAD);
        self.complete_handshake(peer, metadata, now)
    }

    /// Under CURVE the decoder sees only MESSAGE commands: a data frame's size, the frames of
    /// one message and their total are checked here instead, before the frame is kept.
    #[cfg(feature = "curve")]
    fn check_message_limits(&self, len: usize) -> Result<(), Error> {
        use crate::error::FrameError;
        let limits = &self.config.limits;
        if len > limits.max_frame_size {
            return Err(
                FrameError::FrameTooLarge { declared: len as u64, limit: limits.max_frame_size }.into()
            );
        }
        if self.partial.len() >= limits.max_frames {
            return Err(FrameError::TooManyFrames { limit: limits.max_frames }.into());
        }
        let total = self.buffered_message_bytes().saturating_add(len);
        if total > limits.max_message_size {
            let declared = total as u64;
            return Err(FrameError::MessageTooLarge { declared, limit: limits.max_message_size }.into());
        }
        Ok(())
    }

    /// RFC 23 NULL: "the peer SHALL send a READY command" as its first frame (or ERROR).
    fn on_handshake_frame(&mut self, peer: Greeting, frame: Frame, now: Instant) -> Result<(), Error> {
        if !frame.is_command() {
            return Err(Error::ExpectedReady { got: UnexpectedFrame::Message });
        }
        // A copy, so the properties a peer keeps for its lifetime do not hold the read buffer.
        let body = Bytes::copy_from_slice(&frame.body);
        let metadata = match Command::parse(body, self.config.limits.max_metadata_size)? {
            Command::Ready(metadata) => metadata,
            Command::Error { reason } => return Err(Error::PeerError { reason }),
            _ => return Err(Error::ExpectedReady { got: UnexpectedFrame::Command }),
        };
        self.complete_handshake(peer, metadata, now)
    }

    /// The peer's metadata arrived (READY, or CURVE's INITIATE or READY): the connection is up.
    fn complete_handshake(&mut self, peer: Greeting, metadata: Metadata, now: Instant) -> Result<(), Error> {
        let socket_type = self.check_peer_type(&metadata)?;
        let identity = metadata.get(metadata::IDENTITY).cloned().unwrap_or_default();
        self.phase = Phase::Active { peer };
        self.decoder.handshake_done();
        self.handshake_deadline = None;
        self.heartbeat.start(now);
        let (major, minor, curve_key) = (peer.major, peer.minor, self.curve_key());
        let info = PeerInfo { socket_type, identity, metadata, major, minor, curve_key };
        self.events.push_back(Event::HandshakeComplete(info));
        Ok(())
    }

    fn check_peer_type(&mut self, metadata: &Metadata) -> Result<SocketType, Error> {
        let result = self.peer_type(metadata);
        if matches!(result, Err(Error::UnknownSocketType { .. } | Error::IncompatibleSocketType { .. })) {
            self.send_error(b"Invalid socket type");
        }
        result
    }

    /// The peer's socket type from its metadata, if it is one we can talk to.
    fn peer_type(&self, metadata: &Metadata) -> Result<SocketType, Error> {
        let ours = self.config.socket_type;
        let value = metadata.get(metadata::SOCKET_TYPE).ok_or(Error::MissingSocketType)?;
        let Some(theirs) = SocketType::from_bytes(value) else {
            return Err(Error::UnknownSocketType { value: value.clone() });
        };
        if !ours.is_compatible_with(theirs) {
            return Err(Error::IncompatibleSocketType { ours, theirs });
        }
        Ok(theirs)
    }

    fn on_frame(&mut self, frame: Frame, now: Instant) -> Result<(), Error> {
        if frame.is_command() {
            return self.on_command(frame.body, now);
        }
        let more = frame.more();
        if more && self.partial.capacity() == 0 {
            // Room for a routing envelope on top: one allocation per multipart message.
            self.partial.reserve_exact(MESSAGE_CAPACITY);
        }
        self.partial.push(frame.body);
        if !more {
            let message = std::mem::take(&mut self.partial);
            self.on_message(message);
        }
        Ok(())
    }

    /// A publisher reads `\x01topic` / `\x00topic` messages as subscriptions from any peer version
    /// (libzmq's xpub does the same); everything else is passed up as a message.
    fn on_message(&mut self, message: Message) {
        if self.config.socket_type.is_publisher() {
            if let Some(first) = message.first() {
                match first.first() {
                    Some(1) => return self.events.push_back(Event::Subscribe(first.slice(1..))),
                    Some(0) => return self.events.push_back(Event::Cancel(first.slice(1..))),
                    _ => {}
                }
            }
        }
        self.events.push_back(Event::Message(message));
    }

    fn on_command(&mut self, body: Bytes, now: Instant) -> Result<(), Error> {
        let event = match Command::parse(body, self.config.limits.max_metadata_size)? {
            Command::Subscribe { topic } => Event::Subscribe(topic),
            Command::Cancel { topic } => Event::Cancel(topic),
            Command::Ping { ttl_deciseconds, context } => {
                // A peer that pings but never reads must not grow our output without bound.
                if self.encoder.pending() <= MAX_PENDING_FOR_PONG {
                    self.push_command(&Command::Pong { context: context.clone() });
                } else {
                    log::debug!("PONG skipped: {} bytes already wait to be written", self.encoder.pending());
                }
                let ttl = Duration::from_millis(u64::from(ttl_deciseconds) * 100);
                self.heartbeat.on_peer_ping(now, ttl);
                Event::Ping { ttl, context }
            }
            Command::Pong { context } => Event::Pong { context },
            Command::Error { reason } => return Err(Error::PeerError { reason }),
            // A second READY, or a command we do not know: libzmq drops these; so do we.
            Command::Ready(_) | Command::Unknown { .. } => {
                log::debug!("ignoring a command after the handshake");
                return Ok(());
            }
        };
        self.events.push_back(event);
        Ok(())
    }
}

/// Our READY properties: `Socket-Type`, then `Identity` for the types that carry one, then extras.
fn ready_metadata(config: &Config) -> Metadata {
    let mut metadata = Metadata::new();
    metadata.push(metadata::SOCKET_TYPE, config.socket_type.as_str());
    if config.socket_type.sends_identity() {
        metadata.push(metadata::IDENTITY, config.identity.clone());
    }
    for (name, value) in config.metadata.iter() {
        metadata.push(name.clone(), value.clone());
    }
    metadata
}
