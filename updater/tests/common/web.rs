//! A real web server for the fleet tests: nginx from Debian, serving a folder on loopback, and a
//! TCP proxy in front of it that can cut or corrupt the first response.
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        thread::sleep(Duration::from_millis(50));
    }
}

pub struct Nginx {
    child: Child,
    pub port: u16,
    prefix: tempfile::TempDir,
    pub root: PathBuf,
}

impl Nginx {
    /// Serves `root` on 127.0.0.1 at a free port.
    pub fn serve(root: &Path) -> Nginx {
        Self::start(root, None, "")
    }

    /// With extra directives in the server block (e.g. `max_ranges 0;`).
    pub fn serve_with(root: &Path, directives: &str) -> Nginx {
        Self::start(root, None, directives)
    }

    /// Serves `root` over HTTPS with this certificate and key (PEM files).
    pub fn serve_tls(root: &Path, cert: &Path, key: &Path) -> Nginx {
        Self::start(root, Some((cert, key)), "")
    }

    fn start(root: &Path, tls: Option<(&Path, &Path)>, directives: &str) -> Nginx {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path().display();
        let port = free_port();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}
worker_processes 1;
error_log {p}/error.log;
pid {p}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log {p}/access.log;
  client_body_temp_path {p}/body;
  proxy_temp_path {p}/proxy;
  fastcgi_temp_path {p}/fastcgi;
  uwsgi_temp_path {p}/uwsgi;
  scgi_temp_path {p}/scgi;
  types {{ application/zstd zst; application/toml toml; }}
  server {{
    listen 127.0.0.1:{port}{tls};
    root {root};
    {directives}
  }}
}}
",
            root = root.display(),
            tls = tls.map_or(String::new(), |(cert, key)| format!(
                " ssl;\n    ssl_certificate {};\n    ssl_certificate_key {}",
                cert.display(),
                key.display()
            ))
        );
        fs::write(prefix.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(prefix.path())
            .arg("-e")
            .arg(prefix.path().join("error.log"))
            .arg("-c")
            .arg(prefix.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("nginx: {e} (scripts/setup.sh installs nginx-light)"));
        wait_for_port(port);
        Nginx {
            child,
            port,
            prefix,
            root: root.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }

    /// The status codes nginx answered, in order.
    pub fn statuses(&self) -> Vec<u16> {
        let log = fs::read_to_string(self.prefix.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                line.split('"')
                    .nth(2)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }
}

impl Drop for Nginx {
    /// TERM to the master, which stops its workers, then wait: a SIGKILLed master orphans them.
    fn drop(&mut self) {
        // SAFETY: kill has no memory effects; the pid is our child's, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// What the proxy does to the first response that passes through it.
#[derive(Clone, Copy)]
pub enum Fault {
    /// Closes the connection after this many bytes of the response.
    CutAfter(usize),
    /// Flips the bits of the response byte at this offset.
    FlipAt(usize),
}

pub struct Proxy {
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

impl Proxy {
    /// The fault hits the first connection only.
    pub fn start(upstream: u16, fault: Fault) -> Proxy {
        Self::start_with(upstream, fault, false)
    }

    /// The fault hits every connection (an answer shorter than its offset passes unharmed).
    pub fn start_for_all(upstream: u16, fault: Fault) -> Proxy {
        Self::start_with(upstream, fault, true)
    }

    fn start_with(upstream: u16, fault: Fault, every: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                let fault = (first || every).then_some(fault);
                thread::spawn(move || forward(client, upstream, fault));
            }
        });
        Proxy { port, connections }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn forward(mut client: TcpStream, upstream: u16, fault: Option<Fault>) {
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let mut sent = 0usize;
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        match fault {
            Some(Fault::CutAfter(limit)) if sent + n >= limit => {
                let _ = client.write_all(&chunk[..limit - sent]);
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::FlipAt(at)) if (sent..sent + n).contains(&at) => chunk[at - sent] ^= 0xff,
            _ => {}
        }
        if client.write_all(chunk).is_err() {
            break;
        }
        sent += n;
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// A private CA (ca.pem) and a certificate for 127.0.0.1 it signed (server.pem, server.key), made
/// with openssl in `dir`.
pub fn private_ca(dir: &Path) {
    let openssl =
        |args: &str| super::run_in(dir, "openssl", &args.split_whitespace().collect::<Vec<_>>());
    // A new P-256 key without a passphrase, for `openssl req`.
    let new_key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(&format!(
        "req -x509 {new_key} -keyout ca.key -out ca.pem -days 30 -subj /CN=fleet-test-CA \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
    ));
    openssl(&format!(
        "req {new_key} -keyout server.key -out server.csr -subj /CN=127.0.0.1"
    ));
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 30 -extfile server.ext",
    );
}

/// A fleet server's report endpoint: takes POSTed JSON reports and answers every one with
/// `status`.
pub struct ReportServer {
    pub port: u16,
    received: Arc<std::sync::Mutex<Vec<Received>>>,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: serde_json::Value,
}

impl ReportServer {
    pub fn start(status: u16) -> ReportServer {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let header = |request: &tiny_http::Request, name: &'static str| {
                    request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv(name))
                        .map(|h| h.value.to_string())
                };
                let (authorization, content_type) = (
                    header(&request, "Authorization"),
                    header(&request, "Content-Type"),
                );
                let mut body = String::new();
                request.as_reader().read_to_string(&mut body).unwrap();
                log.lock().unwrap().push(Received {
                    authorization,
                    content_type,
                    body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
                });
                let _ = request.respond(tiny_http::Response::empty(status));
            }
        });
        ReportServer { port, received }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/report", self.port)
    }

    /// Waits until a report satisfies `done`; returns every report received until then.
    pub fn wait_for(&self, done: impl Fn(&serde_json::Value) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let received = self.received.lock().unwrap().clone();
            if received.iter().any(|r| done(&r.body)) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "no such report after 60 s: {received:#?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A hand-driven HTTP server for hostile answers: each connection's request head goes to
/// `answer`, which writes whatever it likes to the stream. Every request head is recorded.
pub struct RawServer {
    pub port: u16,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl RawServer {
    pub fn start(answer: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let answer = Arc::new(answer);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (log, answer) = (Arc::clone(&log), Arc::clone(&answer));
                thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    log.lock().unwrap().push(head.clone());
                    answer(&head, &mut stream);
                });
            }
        });
        RawServer { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
