//! A minimal, blocking RESP2 client: just enough to ask a fixture `PING` or `CLUSTER INFO`
//! without spawning `redis-cli` in a tight loop.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$n` (None for the null bulk string)
    Bulk(Option<String>),
    /// `*n` (None for the null array)
    Array(Option<Vec<Reply>>),
}

/// Sends one command to `127.0.0.1:port` on a fresh connection and reads one reply.
pub(crate) fn command(port: u16, args: &[&str]) -> io::Result<Reply> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        req.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        req.extend_from_slice(arg.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&req)?;
    let mut reader = BufReader::new(&stream);
    read_reply(&mut reader)
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a reply",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| bad("empty reply line".into()))?;
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|e| bad(format!("bad integer {s:?} in reply: {e}")))
    };
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => Ok(Reply::Integer(int(rest)?)),
        "$" => {
            let Ok(len) = usize::try_from(int(rest)?) else {
                return Ok(Reply::Bulk(None));
            };
            let mut buf = vec![0; len + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(len);
            Ok(Reply::Bulk(Some(
                String::from_utf8_lossy(&buf).into_owned(),
            )))
        }
        "*" => {
            let Ok(n) = usize::try_from(int(rest)?) else {
                return Ok(Reply::Array(None));
            };
            let items = (0..n).map(|_| read_reply(r)).collect::<io::Result<_>>()?;
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(bad(format!("unexpected reply line {line:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        let mut input: &[u8] = b"*4\r\n+OK\r\n-ERR x\r\n:7\r\n$5\r\na\r\nbc\r\n$-1\r\n";
        assert_eq!(
            read_reply(&mut input).ok(),
            Some(Reply::Array(Some(vec![
                Reply::Simple("OK".into()),
                Reply::Error("ERR x".into()),
                Reply::Integer(7),
                Reply::Bulk(Some("a\r\nbc".into())),
            ])))
        );
        assert_eq!(read_reply(&mut input).ok(), Some(Reply::Bulk(None)));
    }
}
