//! A small HTTP/1.1 server for the local API, made for a hostile neighbour: memory per connection
//! is bounded whatever the headers claim, a request is answered (and may be refused) before any
//! of its body is read, connections are capped, and slow clients time out. One request per
//! connection (`Connection: close`); bodies come with Content-Length or chunked encoding.
//!
//! tiny_http, which this replaces, drained an unread body into `vec![0; Content-Length]`, so one
//! unauthenticated request with a huge Content-Length aborted the daemon.
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tracing::warn;

/// Connections served at once; more are answered 503 at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The request line and headers together.
const MAX_HEAD: usize = 16 << 10;
const MAX_HEADERS: usize = 64;
/// A client must send its request head within this time.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A body (an upload) may pause this long between two reads.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// After answering, unread body bytes are read and dropped up to this many, so the client sees
/// the answer rather than a connection reset; the rest is not read.
const DRAIN_LIMIT: u64 = 64 << 10;

pub struct Request<S: Read = TcpStream> {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    headers: Vec<(String, String)>,
    body: Body<S>,
}

impl<S: Read> Request<S> {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body, as it arrives.
    pub fn body(&mut self) -> &mut dyn Read {
        &mut self.body
    }
}

pub struct Response {
    pub status: u16,
    pub json: String,
}

pub type Handler = dyn Fn(&mut Request<TcpStream>) -> Response + Send + Sync;

/// Answers requests until the listener fails; each connection on its own thread, since an upload
/// lasts as long as its install.
pub fn serve(listener: TcpListener, handler: Arc<Handler>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                warn!(%err, "api: accept failed");
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            refuse_busy(stream);
            continue;
        }
        let (handler, done) = (Arc::clone(&handler), Arc::clone(&active));
        let spawned = thread::Builder::new().name("api".into()).spawn(move || {
            connection(stream, &*handler);
            done.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(err) = spawned {
            active.fetch_sub(1, Ordering::SeqCst);
            warn!(%err, "api: cannot start a thread for a connection");
        }
    }
}

fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = write_response(
        &mut stream,
        &Response {
            status: 503,
            json: r#"{"error":"too many connections"}"#.into(),
        },
    );
    let _ = stream.shutdown(Shutdown::Both);
}

fn connection(stream: TcpStream, handler: &Handler) {
    let (Ok(mut writer), Ok(continue_to)) = (stream.try_clone(), stream.try_clone()) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(HEAD_TIMEOUT));
    let _ = writer.set_write_timeout(Some(BODY_IDLE_TIMEOUT));
    let reader = BufReader::with_capacity(8 << 10, stream);
    let (response, mut body) = match read_request(reader, Some(Box::new(continue_to))) {
        Ok(mut request) => {
            let _ = writer.set_read_timeout(Some(BODY_IDLE_TIMEOUT));
            (handler(&mut request), Some(request.body))
        }
        // A connection closed without a byte (a port probe) gets no answer.
        Err(None) => return,
        Err(Some(bad)) => (bad, None),
    };
    if let Err(err) = write_response(&mut writer, &response) {
        warn!(%err, "api: answering failed");
    }
    let _ = writer.shutdown(Shutdown::Write);
    if let Some(body) = body.as_mut() {
        // The writer shares the socket with the body's reader.
        let _ = writer.set_read_timeout(Some(Duration::from_secs(1)));
        drain(body);
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// Reads what is left of a body the handler did not read, briefly and within `DRAIN_LIMIT`, so
/// that closing does not reset the connection before the client has read the answer.
fn drain<S: Read>(body: &mut Body<S>) {
    body.expect_continue = false;
    let _ = io::copy(&mut body.take(DRAIN_LIMIT), &mut io::sink());
}

fn reply(status: u16, error: &str) -> Response {
    Response {
        status,
        json: serde_json::json!({ "error": error }).to_string(),
    }
}

/// Continue, for a client that sent `Expect: 100-continue`; where the go-ahead is written.
pub type ContinueTo = Option<Box<dyn Write + Send>>;

/// Reads a request's head from `reader`; its body stays in the stream, to be read as it arrives.
/// `Err(None)`: the connection closed before sending anything.
pub fn read_request<S: Read>(
    mut reader: BufReader<S>,
    continue_to: ContinueTo,
) -> Result<Request<S>, Option<Response>> {
    let head = read_head(&mut reader)?;
    parse_request(reader, &head, continue_to).map_err(Some)
}

fn parse_request<S: Read>(
    reader: BufReader<S>,
    head: &[u8],
    continue_to: ContinueTo,
) -> Result<Request<S>, Response> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(reply(400, "incomplete request")),
        Err(httparse::Error::TooManyHeaders) => return Err(reply(431, "too many header fields")),
        Err(e) => return Err(reply(400, &format!("malformed request: {e}"))),
    }
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return Err(reply(400, "malformed request line"));
    };
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let chunked = match find("Transfer-Encoding").as_slice() {
        [] => false,
        [value] if value.eq_ignore_ascii_case("chunked") => true,
        _ => return Err(reply(501, "only chunked transfer encoding is understood")),
    };
    let length = match find("Content-Length").as_slice() {
        [] => None,
        [value] if !chunked => Some(
            value
                .parse::<u64>()
                .map_err(|_| reply(400, "Content-Length is not a number"))?,
        ),
        // Two lengths, or a length with chunked encoding: the request smuggling classics.
        _ => return Err(reply(400, "conflicting message length")),
    };
    let expect_continue = find("Expect")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("100-continue"));
    let framing = if chunked {
        Framing::Chunked {
            left_in_chunk: 0,
            done: false,
        }
    } else {
        Framing::Length(length.unwrap_or(0))
    };
    Ok(Request {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or("").to_string(),
        headers,
        body: Body {
            reader,
            framing,
            expect_continue,
            continue_to,
        },
    })
}

/// The request line and headers, up to the blank line; bounded by `MAX_HEAD`.
fn read_head<S: Read>(reader: &mut BufReader<S>) -> Result<Vec<u8>, Option<Response>> {
    let mut head = Vec::with_capacity(1024);
    loop {
        let line_start = head.len();
        let read = reader
            .by_ref()
            .take((MAX_HEAD - head.len()) as u64)
            .read_until(b'\n', &mut head);
        match read {
            Ok(0) if head.is_empty() => return Err(None),
            Ok(0) => {
                return Err(Some(reply(
                    400,
                    "connection closed before the request ended",
                )))
            }
            Ok(_) if !head.ends_with(b"\n") => {
                return Err(Some(reply(431, "request head too large")))
            }
            Ok(_) => {
                let line = &head[line_start..];
                if line == b"\r\n" || line == b"\n" {
                    return Ok(head);
                }
            }
            Err(e) => return Err(Some(reply(408, &format!("reading the request: {e}")))),
        }
    }
}

enum Framing {
    Length(u64),
    Chunked { left_in_chunk: u64, done: bool },
}

/// A request body, framed by Content-Length or chunked encoding.
struct Body<S: Read> {
    reader: BufReader<S>,
    framing: Framing,
    /// `Expect: 100-continue`: the client waits for a go-ahead before it sends the body.
    expect_continue: bool,
    continue_to: ContinueTo,
}

impl<S: Read> Body<S> {
    fn raw_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }

    fn raw_byte(&mut self) -> io::Result<u8> {
        let mut byte = [0u8];
        match self.raw_read(&mut byte)? {
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the body ended early",
            )),
            _ => Ok(byte[0]),
        }
    }

    /// One line of chunk framing, without its CRLF; at most 1 KiB.
    fn framing_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        loop {
            match self.raw_byte()? {
                b'\n' => break,
                byte if line.len() < 1024 => line.push(byte),
                _ => return Err(io::Error::other("chunk framing line too long")),
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| io::Error::other("chunk framing is not text"))
    }
}

impl<S: Read> Read for Body<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.expect_continue {
            self.expect_continue = false;
            if let Some(writer) = self.continue_to.as_mut() {
                writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
        }
        loop {
            match &mut self.framing {
                Framing::Length(0) => return Ok(0),
                Framing::Length(left) => {
                    let left = *left;
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.raw_read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the body ended before its Content-Length",
                        ));
                    }
                    self.framing = Framing::Length(left - n as u64);
                    return Ok(n);
                }
                Framing::Chunked { done: true, .. } => return Ok(0),
                Framing::Chunked {
                    left_in_chunk: 0, ..
                } => {
                    let line = self.framing_line()?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size, 16)
                        .map_err(|_| io::Error::other(format!("bad chunk size '{size}'")))?;
                    if size == 0 {
                        // Trailers, up to the blank line.
                        while !self.framing_line()?.is_empty() {}
                    }
                    self.framing = Framing::Chunked {
                        left_in_chunk: size,
                        done: size == 0,
                    };
                }
                Framing::Chunked { left_in_chunk, .. } => {
                    let chunk_left = *left_in_chunk;
                    let want = buf
                        .len()
                        .min(usize::try_from(chunk_left).unwrap_or(usize::MAX));
                    let n = self.raw_read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the body ended inside a chunk",
                        ));
                    }
                    let left = chunk_left - n as u64;
                    if left == 0 && !self.framing_line()?.is_empty() {
                        return Err(io::Error::other("chunk not followed by CRLF"));
                    }
                    self.framing = Framing::Chunked {
                        left_in_chunk: left,
                        done: false,
                    };
                    return Ok(n);
                }
            }
        }
    }
}

fn write_response(stream: &mut TcpStream, response: &Response) -> io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.json.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(response.json.as_bytes())?;
    stream.flush()
}
