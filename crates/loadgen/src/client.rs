//! Keep-alive HTTP/1.1 GET clients, one TCP connection each, reconnecting when the
//! server closes it:
//!
//! * [`Conn`]: hyper's client connection API;
//! * [`RawConn`]: a pre-encoded request written with one `write` and the answer parsed with
//!   `httparse`: a few times cheaper per request than hyper's client, so that on one core
//!   the load generator outruns the server under test instead of being the bottleneck.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Where and what to GET.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    host: HeaderValue,
    path: Uri,
}

impl Target {
    /// Parses `http://127.0.0.1:port/path`. Only loopback addresses are accepted: the
    /// benchmarks send traffic to processes they started on this machine, nowhere else.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("{url}: only http:// URLs are supported");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("{url}: no host"))?
            .clone();
        let host = match authority.host() {
            "localhost" => "127.0.0.1",
            h => h.trim_start_matches('[').trim_end_matches(']'),
        };
        let ip: std::net::IpAddr = host
            .parse()
            .with_context(|| format!("{url}: the host must be a loopback IP address"))?;
        if !ip.is_loopback() {
            bail!("{url}: refusing a non-loopback target");
        }
        let port = authority.port_u16().unwrap_or(80);
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()?;
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            host: HeaderValue::from_str(authority.as_str())?,
            path,
        })
    }

    /// The path, without the query.
    pub(crate) fn path(&self) -> &str {
        self.path.path()
    }
}

/// One keep-alive connection.
pub(crate) struct Conn {
    target: Target,
    auth: Option<HeaderValue>,
    sender: Option<SendRequest<Empty<Bytes>>>,
    /// Connections opened (1 + reconnects).
    pub connects: u64,
}

impl Conn {
    pub(crate) fn new(target: Target, bearer: Option<&str>) -> anyhow::Result<Self> {
        let auth = bearer
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()?;
        Ok(Self {
            target,
            auth,
            sender: None,
            connects: 0,
        })
    }

    /// Replaces the bearer token.
    pub(crate) fn set_bearer(&mut self, bearer: &str) -> anyhow::Result<()> {
        self.auth = Some(HeaderValue::from_str(&format!("Bearer {bearer}"))?);
        Ok(())
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let stream = TcpStream::connect(self.target.addr)
            .await
            .with_context(|| format!("connect {}", self.target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.connects += 1;
        self.sender = Some(sender);
        Ok(())
    }

    fn request(&self) -> anyhow::Result<Request<Empty<Bytes>>> {
        let mut builder =
            Request::get(self.target.path.clone()).header(header::HOST, self.target.host.clone());
        if let Some(auth) = &self.auth {
            builder = builder.header(header::AUTHORIZATION, auth.clone());
        }
        Ok(builder.body(Empty::new())?)
    }

    /// One GET; the body is read to the end. A connection the server closed is reopened
    /// once before giving up.
    pub(crate) async fn get(&mut self) -> anyhow::Result<StatusCode> {
        let mut retried = false;
        loop {
            if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
                self.connect().await?;
            }
            let request = self.request()?;
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            let sent = match sender.ready().await {
                Ok(()) => sender.send_request(request).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(response) => {
                    let status = response.status();
                    response.into_body().collect().await?;
                    return Ok(status);
                }
                Err(e) if !retried => {
                    retried = true;
                    self.sender = None;
                    tracing_note(&e);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A keep-alive connection sending one fixed, pre-encoded GET request.
pub(crate) struct RawConn {
    addr: SocketAddr,
    request: Vec<u8>,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Connections opened (1 + reconnects).
    pub connects: u64,
}

impl RawConn {
    pub(crate) fn new(target: &Target, bearer: Option<&str>) -> anyhow::Result<Self> {
        let host = target.host.to_str()?;
        let mut request = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", target.path);
        if let Some(token) = bearer {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        Ok(Self {
            addr: target.addr,
            request: request.into_bytes(),
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
            connects: 0,
        })
    }

    /// One GET; the body is read (by `Content-Length`) and dropped. A connection the
    /// server closed is reopened once before giving up.
    pub(crate) async fn get(&mut self) -> anyhow::Result<StatusCode> {
        match self.try_get().await {
            Ok(status) => Ok(status),
            Err(_) => {
                self.stream = None;
                self.try_get().await
            }
        }
    }

    async fn try_get(&mut self) -> anyhow::Result<StatusCode> {
        let stream = match self.stream.as_mut() {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.addr)
                    .await
                    .with_context(|| format!("connect {}", self.addr))?;
                s.set_nodelay(true)?;
                self.connects += 1;
                self.buf.clear();
                self.stream.insert(s)
            }
        };
        stream.write_all(&self.request).await?;
        loop {
            if let Some((status, total, close)) = parse_response(&self.buf)?
                && self.buf.len() >= total
            {
                self.buf.drain(..total);
                if close {
                    self.stream = None;
                }
                return Ok(status);
            }
            if self.buf.len() == self.buf.capacity() {
                self.buf.reserve(self.buf.capacity());
            }
            let n = stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                bail!("connection closed by the server");
            }
        }
    }
}

/// Status, total length (head + body) and whether the server closes the connection, once
/// the head is complete.
fn parse_response(buf: &[u8]) -> anyhow::Result<Option<(StatusCode, usize, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = StatusCode::from_u16(response.code.unwrap_or(0))?;
    let mut body_len = None;
    let mut close = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = Some(std::str::from_utf8(h.value)?.trim().parse::<usize>()?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported by the raw client (use --client hyper)");
        } else if h.name.eq_ignore_ascii_case("connection")
            && h.value.eq_ignore_ascii_case(b"close")
        {
            close = true;
        }
    }
    Ok(Some((status, head_len + body_len.unwrap_or(0), close)))
}

fn tracing_note(e: &hyper::Error) {
    if std::env::var_os("LOADGEN_DEBUG").is_some() {
        eprintln!("loadgen: request failed, reconnecting: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_content_length() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1";
        let (status, total, close) = parse_response(ok).unwrap().unwrap();
        assert_eq!((status, total, close), (StatusCode::OK, 40, false));
        assert!(parse_response(b"HTTP/1.1 401 Unauth").unwrap().is_none());
        let closing = b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n";
        assert_eq!(
            parse_response(closing).unwrap(),
            Some((StatusCode::UNAUTHORIZED, closing.len(), true))
        );
    }
}
