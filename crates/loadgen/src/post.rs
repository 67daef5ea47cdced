//! [`JsonConn`]: one keep-alive HTTP/1.1 connection (hyper) for JSON `POST`s to the
//! auth-center, whose answers are read whole; and the status key the results count answers
//! by (`"200"`, `"429"`, `"401 invalid_refresh_token"`).

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::client::Target;

/// A keep-alive connection to one loopback server; reconnects (before sending) when the
/// server has closed it. Requests are never retried: a refresh is not idempotent.
pub(crate) struct JsonConn {
    addr: std::net::SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
    /// Connections opened.
    pub connects: u64,
}

/// An answer: its status and whole body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl JsonConn {
    /// A connection to the server at `base_url` (`http://127.0.0.1:8080`, loopback only);
    /// each request fails after `timeout`.
    pub(crate) fn new(base_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let target = Target::parse(base_url)?;
        let uri: Uri = base_url.parse()?;
        let authority = uri.authority().context("no host")?;
        Ok(Self {
            addr: target.addr,
            host: HeaderValue::from_str(authority.as_str())?,
            sender: None,
            timeout,
            connects: 0,
        })
    }

    /// `POST path` with a JSON body. On a transport error or timeout the connection is
    /// dropped (the next request opens a new one).
    pub(crate) async fn post(&mut self, path: &str, json: Bytes) -> anyhow::Result<Answer> {
        let request = Request::post(path)
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(json))?;
        let answer = tokio::time::timeout(self.timeout, self.send(request)).await;
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                anyhow::bail!("no answer within {:?}", self.timeout)
            }
        }
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            _ => {
                let stream = TcpStream::connect(self.addr)
                    .await
                    .with_context(|| format!("connect {}", self.addr))?;
                stream.set_nodelay(true)?;
                let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                self.connects += 1;
                self.sender.insert(sender)
            }
        };
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }
}

impl Answer {
    /// `"200"` for a 200, else the status and the body's `error` code when it has one:
    /// `"401 invalid_refresh_token"`, `"503 overloaded"`, `"502"`.
    pub(crate) fn key(&self) -> String {
        status_key(self.status, &self.body)
    }
}

/// See [`Answer::key`].
fn status_key(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    if status == StatusCode::OK {
        return "200".into();
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.error.is_empty() && !e.error.contains(char::is_whitespace) => {
            format!("{} {}", status.as_u16(), e.error)
        }
        _ => status.as_u16().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_status_and_error_code() {
        let key = |code: u16, body: &str| {
            status_key(StatusCode::from_u16(code).unwrap(), body.as_bytes())
        };
        assert_eq!(key(200, r#"{"access_token":"x"}"#), "200");
        assert_eq!(
            key(401, r#"{"error":"refresh_token_reused","message":"m"}"#),
            "401 refresh_token_reused"
        );
        assert_eq!(key(429, r#"{"error":"rate_limited"}"#), "429 rate_limited");
        assert_eq!(key(502, "<html>bad gateway</html>"), "502");
        assert_eq!(key(500, r#"{"error":"a b"}"#), "500");
    }

    #[test]
    fn only_loopback_servers_are_accepted() {
        let t = Duration::from_secs(1);
        assert!(JsonConn::new("http://127.0.0.1:8080", t).is_ok());
        assert!(JsonConn::new("http://192.168.1.1:8080", t).is_err());
    }
}
