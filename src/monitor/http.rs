//! Just enough HTTP/1.x for a monitoring endpoint: one request head parsed with `httparse`
//! (bounded: 32 headers, the reactor's input limit), one response with `Connection: close`.
//! No bodies are read, nothing is kept between requests.

/// Headers a request may have; more is a 431.
const MAX_HEADERS: usize = 32;

/// What the bytes received so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head has not ended yet.
    Partial,
    /// A complete head: the method and the path without its query string.
    Request {
        /// The method as sent (`GET`, `HEAD`, ...).
        method: String,
        /// The request target up to its first `?` or `#`.
        path: String,
    },
    /// Not HTTP: answered 400 and closed.
    Malformed,
    /// Too many headers, or the head does not end within the input limit: answered 431.
    TooLarge,
}

/// Parses a request head; `done` says no more input will come (the limit was reached, or the
/// peer closed its side): an incomplete head is then `TooLarge`.
pub fn parse(input: &[u8], done: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(input) {
        Ok(httparse::Status::Complete(_)) => {
            let method = request.method.unwrap_or_default().to_string();
            let target = request.path.unwrap_or_default();
            let path = target.split(['?', '#']).next().unwrap_or_default().to_string();
            Parsed::Request { method, path }
        }
        Ok(httparse::Status::Partial) if done => Parsed::TooLarge,
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::TooLarge,
        Err(_) => Parsed::Malformed,
    }
}

/// A complete response: status line, `Content-Type`, `Content-Length`, `Connection: close`,
/// then `body` unless `head_only` (a HEAD request).
pub fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_is_parsed_when_complete() {
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n", false), Parsed::Partial);
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", false),
            Parsed::Request { method: "GET".into(), path: "/metrics".into() }
        );
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n", true), Parsed::TooLarge);
        assert_eq!(parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", false), Parsed::Malformed);
    }

    #[test]
    fn too_many_headers_is_too_large() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            head.extend(format!("X-{i}: y\r\n").bytes());
        }
        head.extend(b"\r\n");
        assert_eq!(parse(&head, false), Parsed::TooLarge);
    }

    #[test]
    fn a_head_response_has_no_body_but_its_length() {
        let text = String::from_utf8(response(200, "text/plain", b"hello", true)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
