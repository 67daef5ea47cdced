//! `loadgen wire`: where each refresh's time went, read off a packet capture of the
//! loopback (`tcpdump -i lo -w`), not off the processes' own clocks.
//!
//! For every refresh the capture holds four moments, each the time its last byte went
//! through the loopback (the sender's `write`):
//!
//! 1. the request, `POST /v1/refresh` from the load generator to the auth-center;
//! 2. the auth-center's Redis command for that session (`EVALSHA` with the session key,
//!    `<prefix>:s:{<user>}:<sid>`, matched to the request by the user and session id in the
//!    refresh token, `<user>.<sid>.<secret>.<mac>`);
//! 3. Redis's reply to it (the replies of one connection answer its commands in order);
//! 4. the auth-center's response.
//!
//! So `before_redis` (1→2) is the auth-center's time to read the request and write the
//! command (its runtime's queue included), `redis` (2→3) is Redis's (reading, running and
//! answering, and any wait for its core), `after_redis` (3→4) is the auth-center's again
//! (reading the reply, waking the request's task, signing, writing the response).
//!
//! A connection whose handshake is not in the capture is taken from its first command on:
//! Redis bytes before it answer commands sent before the capture and are dropped (`bench.sh`
//! starts the capture while the connection is idle). Bytes lost to the capture (a gap in a
//! stream's sequence numbers) end that stream's reading there, and the result says so.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, clap::Args)]
pub(crate) struct WireArgs {
    /// The capture (pcap, microsecond or nanosecond timestamps).
    #[arg(long)]
    pcap: PathBuf,
    /// The auth-center's HTTP port.
    #[arg(long)]
    http_port: u16,
    /// Redis's port.
    #[arg(long)]
    redis_port: u16,
    /// A refresh slower than this (request to response on the wire) counts as slow.
    #[arg(long, default_value_t = 5.0)]
    slow_ms: f64,
    /// Leave out refreshes whose request came less than this long after the first one
    /// (the load generator's warm-up).
    #[arg(long, default_value_t = 0.0)]
    skip_s: f64,
    /// Free text copied into the result.
    #[arg(long, default_value = "")]
    label: String,
}

/// The width of a slice of the result's `slices`.
const SLICE_NS: u64 = 100_000_000;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireResult {
    pub(crate) kind: String,
    pub(crate) label: String,
    /// TCP packets on the two ports.
    pub(crate) packets: usize,
    /// Refreshes with all four moments, after the skipped warm-up.
    pub(crate) refreshes: usize,
    /// Refresh requests answered on the wire but with no Redis command found for them.
    pub(crate) unmatched: usize,
    /// Matches whose moments were out of order (request, command, reply, response): left out.
    pub(crate) out_of_order: usize,
    /// Streams whose reading stopped at bytes missing from the capture.
    pub(crate) streams_cut: usize,
    /// Redis connections picked up mid-stream (no handshake in the capture).
    pub(crate) redis_mid_stream: usize,
    /// Percentiles of each part over all refreshes, in µs: `total`, `before_redis`,
    /// `redis`, `after_redis`.
    pub(crate) parts: BTreeMap<String, Spread>,
    pub(crate) slow_ms: f64,
    /// Refreshes over `slow_ms`.
    pub(crate) slow: usize,
    /// Over the slow refreshes: each part's share of their summed time.
    pub(crate) slow_share: BTreeMap<String, f64>,
    /// Over the slow refreshes: how many had each part as their largest.
    pub(crate) slow_largest: BTreeMap<String, usize>,
    /// 100 ms slices (from the first refresh counted) with a slow refresh.
    pub(crate) slices: Vec<WireSlice>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Spread {
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    pub(crate) max_us: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct WireSlice {
    pub(crate) index: u64,
    pub(crate) refreshes: usize,
    pub(crate) slow: usize,
    /// The slowest refresh of the slice, and its parts, in µs.
    pub(crate) total_us: f64,
    pub(crate) before_redis_us: f64,
    pub(crate) redis_us: f64,
    pub(crate) after_redis_us: f64,
}

pub(crate) fn run(args: WireArgs) -> anyhow::Result<WireResult> {
    let bytes =
        std::fs::read(&args.pcap).with_context(|| format!("read {}", args.pcap.display()))?;
    let packets = read_pcap(&bytes)?;
    let mut result = analyse(&packets, &args)?;
    result.label = args.label;
    Ok(result)
}

/// One TCP segment of the capture.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) ts_ns: u64,
    pub(crate) src: ([u8; 16], u16),
    pub(crate) dst: ([u8; 16], u16),
    pub(crate) seq: u32,
    pub(crate) syn: bool,
    pub(crate) payload: Vec<u8>,
}

/// The TCP segments of a pcap file (Ethernet, Linux cooked v1/v2, BSD loopback or raw IP
/// links; IPv4 and IPv6).
pub(crate) fn read_pcap(bytes: &[u8]) -> anyhow::Result<Vec<Segment>> {
    if bytes.len() < 24 {
        bail!("not a pcap file: too short");
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (little, nanos) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        _ => bail!("not a pcap file (pcapng is not read: use tcpdump -w, not dumpcap)"),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let link = u32_at(20).unwrap_or_default();
    let mut out = Vec::new();
    let mut at = 24;
    while let (Some(secs), Some(frac), Some(caught)) = (u32_at(at), u32_at(at + 4), u32_at(at + 8))
    {
        let start = at + 16;
        let Some(frame) = bytes.get(start..start + caught as usize) else {
            break; // a truncated last record
        };
        at = start + caught as usize;
        let ts_ns =
            u64::from(secs) * 1_000_000_000 + u64::from(frac) * if nanos { 1 } else { 1_000 };
        if let Some(segment) = parse_frame(link, frame, ts_ns) {
            out.push(segment);
        }
    }
    Ok(out)
}

fn parse_frame(link: u32, frame: &[u8], ts_ns: u64) -> Option<Segment> {
    let ip = match link {
        1 => {
            // Ethernet: the EtherType, after a VLAN tag if any.
            let ether = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
            if ether == 0x8100 {
                frame.get(18..)?
            } else {
                frame.get(14..)?
            }
        }
        0 | 108 => frame.get(4..)?, // BSD loopback
        101 | 12 | 14 => frame,     // raw IP
        113 => frame.get(16..)?,    // Linux cooked
        276 => frame.get(20..)?,    // Linux cooked v2
        _ => return None,
    };
    let version = ip.first()? >> 4;
    let (src_ip, dst_ip, tcp) = match version {
        4 => {
            let header = usize::from(ip.first()? & 0x0f) * 4;
            if *ip.get(9)? != 6 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src[12..].copy_from_slice(ip.get(12..16)?);
            dst[12..].copy_from_slice(ip.get(16..20)?);
            (src, dst, ip.get(header..total.min(ip.len()))?)
        }
        6 => {
            if *ip.get(6)? != 6 {
                return None; // extension headers are not followed
            }
            let length = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (src, dst, ip.get(40..(40 + length).min(ip.len()))?)
        }
        _ => return None,
    };
    let src_port = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dst_port = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let seq = u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?);
    let offset = usize::from(tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    Some(Segment {
        ts_ns,
        src: (src_ip, src_port),
        dst: (dst_ip, dst_port),
        seq,
        syn: flags & 0x02 != 0,
        payload: tcp.get(offset..)?.to_vec(),
    })
}

/// One direction of a connection, reassembled: its bytes, and for each stretch of them the
/// time of the segment that brought it.
#[derive(Debug, Default)]
struct Stream {
    data: Vec<u8>,
    /// (end offset of the bytes a segment added, its time), in order.
    arrivals: Vec<(usize, u64)>,
    cut: bool,
}

impl Stream {
    /// The time the byte before offset `end` arrived: when a message ending there was whole.
    fn time_of_end(&self, end: usize) -> Option<u64> {
        let i = self.arrivals.partition_point(|&(stop, _)| stop < end);
        self.arrivals.get(i).map(|&(_, ts)| ts)
    }
}

/// Reassembles one direction from its segments (in capture order): duplicates and
/// retransmitted parts are dropped, a segment ahead of the stream waits for the bytes
/// before it, and a stream whose missing bytes never come is cut there. Without the SYN,
/// the stream starts at the first segment with data at or after `from_ns`.
fn reassemble(segments: &[&Segment], from_ns: u64) -> (Stream, bool) {
    let mut stream = Stream::default();
    let syn = segments.iter().find(|s| s.syn);
    let start = match syn {
        Some(s) => s.seq.wrapping_add(1),
        None => match segments
            .iter()
            .find(|s| !s.payload.is_empty() && s.ts_ns >= from_ns)
        {
            Some(s) => s.seq,
            None => return (stream, false),
        },
    };
    let mut ahead: BTreeMap<usize, (&[u8], u64)> = BTreeMap::new();
    for s in segments.iter().filter(|s| !s.payload.is_empty()) {
        let rel = s.seq.wrapping_sub(start);
        if rel >= 1 << 31 {
            continue; // before the start
        }
        let rel = rel as usize;
        ahead.insert(rel, (&s.payload, s.ts_ns));
        while let Some((&at, &(bytes, ts))) = ahead.first_key_value() {
            if at > stream.data.len() {
                break;
            }
            ahead.pop_first();
            let end = at + bytes.len();
            if end > stream.data.len() {
                stream
                    .data
                    .extend_from_slice(&bytes[stream.data.len() - at..]);
                // Bytes that came ahead of a gap are in order once the gap is filled.
                stream.arrivals.push((end, ts.max(s.ts_ns)));
            }
        }
    }
    stream.cut = !ahead.is_empty();
    (stream, syn.is_some())
}

/// An HTTP/1.1 message in a stream: where it ends, its first line and its body.
#[derive(Debug)]
struct HttpMessage {
    end: usize,
    first_line: String,
    body: Vec<u8>,
}

/// The whole HTTP/1.1 messages at the start of `data` (bodies by `Content-Length` or
/// chunked).
fn http_messages(data: &[u8]) -> Vec<HttpMessage> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(message) = http_message(data, at) {
        at = message.end;
        out.push(message);
    }
    out
}

fn http_message(data: &[u8], at: usize) -> Option<HttpMessage> {
    let rest = data.get(at..)?;
    let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&rest[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let first_line = lines.next()?.to_owned();
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body_start = at + head_end;
    if chunked {
        let (body, end) = dechunk(data, body_start)?;
        return Some(HttpMessage {
            end,
            first_line,
            body,
        });
    }
    // A response without a length and not chunked would end with the connection; the
    // refreshes' responses always have one, and a request without one has no body.
    let end = body_start + length.unwrap_or(0);
    Some(HttpMessage {
        end,
        first_line,
        body: data.get(body_start..end)?.to_vec(),
    })
}

fn dechunk(data: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    loop {
        let line_end = at + data.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers (none expected), then the empty line.
            loop {
                let end = at + data.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((body, at));
                }
            }
        }
        body.extend_from_slice(data.get(at..at + size)?);
        at += size + 2;
    }
}

/// Reads a RESP line (after its type byte) ending at CRLF: (the line, the offset after it).
fn resp_line(data: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let end = at + data.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    Some((&data[at..end], end + 2))
}

fn resp_int(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// A command (an array of bulk strings) in a client's stream: its arguments and where it ends.
fn resp_command(data: &[u8], at: usize) -> Option<(Vec<Vec<u8>>, usize)> {
    if *data.get(at)? != b'*' {
        return None;
    }
    let (count, mut at) = resp_line(data, at + 1)?;
    let count = usize::try_from(resp_int(count)?).ok()?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        if *data.get(at)? != b'$' {
            return None;
        }
        let (len, start) = resp_line(data, at + 1)?;
        let len = usize::try_from(resp_int(len)?).ok()?;
        args.push(data.get(start..start + len)?.to_vec());
        at = start + len + 2;
        if at > data.len() {
            return None;
        }
    }
    Some((args, at))
}

/// Where the RESP2/RESP3 value at `at` ends, and whether it is a push (`>`, not a reply).
/// An attribute (`|`) belongs to the value after it.
fn resp_value_end(data: &[u8], at: usize) -> Option<(usize, bool)> {
    let kind = *data.get(at)?;
    let (line, after) = resp_line(data, at + 1)?;
    let end = match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => after,
        b'$' | b'!' | b'=' => {
            let len = resp_int(line)?;
            if len < 0 {
                after
            } else {
                let end = after + usize::try_from(len).ok()? + 2;
                if end > data.len() {
                    return None;
                }
                end
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = resp_int(line)?;
            let n = if n < 0 { 0 } else { usize::try_from(n).ok()? };
            let n = if matches!(kind, b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let mut end = after;
            for _ in 0..n {
                end = resp_value_end(data, end)?.0;
            }
            if kind == b'|' {
                return resp_value_end(data, end);
            }
            end
        }
        _ => return None,
    };
    Some((end, kind == b'>'))
}

/// A Redis call seen on the wire.
#[derive(Debug)]
struct RedisCall {
    sent_ns: u64,
    answered_ns: u64,
    session: Option<(String, String)>,
}

/// The `(user, sid)` of a session key among a command's arguments (`<prefix>:s:{<user>}:<sid>`).
fn session_of(args: &[Vec<u8>]) -> Option<(String, String)> {
    args.iter().skip(1).find_map(|arg| {
        let text = std::str::from_utf8(arg).ok()?;
        let (_, tagged) = text.split_once(":s:{")?;
        let (user, sid) = tagged.split_once("}:")?;
        (!sid.contains(':')).then(|| (user.to_owned(), sid.to_owned()))
    })
}

/// The `(user, sid)` of a refresh request's body (`{"refresh_token": "<user>.<sid>...."}`).
fn refresh_session(body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let token = value.get("refresh_token")?.as_str()?;
    let mut parts = token.split('.');
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}

/// A refresh's four moments.
#[derive(Debug, Clone, Copy)]
struct Refresh {
    request_ns: u64,
    command_ns: u64,
    reply_ns: u64,
    response_ns: u64,
}

impl Refresh {
    fn parts_us(&self) -> [f64; 4] {
        let us = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / 1_000.0;
        [
            us(self.request_ns, self.response_ns),
            us(self.request_ns, self.command_ns),
            us(self.command_ns, self.reply_ns),
            us(self.reply_ns, self.response_ns),
        ]
    }
}

const PART_NAMES: [&str; 4] = ["total", "before_redis", "redis", "after_redis"];

type Endpoint = ([u8; 16], u16);

pub(crate) fn analyse(segments: &[Segment], args: &WireArgs) -> anyhow::Result<WireResult> {
    let (http_port, redis_port) = (args.http_port, args.redis_port);
    // Each connection by its client end, with its two directions.
    let mut connections: HashMap<(Endpoint, Endpoint), [Vec<&Segment>; 2]> = HashMap::new();
    let mut packets = 0;
    for s in segments {
        let (client, server, dir) = if s.dst.1 == http_port || s.dst.1 == redis_port {
            (s.src, s.dst, 0)
        } else if s.src.1 == http_port || s.src.1 == redis_port {
            (s.dst, s.src, 1)
        } else {
            continue;
        };
        packets += 1;
        connections.entry((client, server)).or_default()[dir].push(s);
    }
    let mut streams_cut = 0;
    let mut redis_mid_stream = 0;
    let mut requests: Vec<(u64, u64, (String, String))> = Vec::new(); // request, response, session
    let mut calls: Vec<RedisCall> = Vec::new();
    for ((_, server), [up, down]) in &connections {
        let (up_stream, syn) = reassemble(up, 0);
        // Without the handshake, Redis's bytes before the first command answer commands
        // from before the capture.
        let first_up = up_stream.arrivals.first().map_or(u64::MAX, |&(_, ts)| ts);
        let (down_stream, _) = reassemble(down, if syn { 0 } else { first_up });
        streams_cut += usize::from(up_stream.cut) + usize::from(down_stream.cut);
        if server.1 == http_port {
            let sent = http_messages(&up_stream.data);
            let answered = http_messages(&down_stream.data);
            for (request, response) in sent.iter().zip(&answered) {
                if !request.first_line.starts_with("POST /v1/refresh ")
                    || !response.first_line.contains(" 200 ")
                {
                    continue;
                }
                let (Some(session), Some(at), Some(back)) = (
                    refresh_session(&request.body),
                    up_stream.time_of_end(request.end),
                    down_stream.time_of_end(response.end),
                ) else {
                    continue;
                };
                requests.push((at, back, session));
            }
        } else {
            redis_mid_stream += usize::from(!syn && !up_stream.data.is_empty());
            let mut commands = Vec::new();
            let mut at = 0;
            while let Some((args, end)) = resp_command(&up_stream.data, at) {
                commands.push((session_of(&args), up_stream.time_of_end(end)));
                at = end;
            }
            let mut replies = Vec::new();
            let mut at = 0;
            while let Some((end, push)) = resp_value_end(&down_stream.data, at) {
                if !push {
                    replies.push(down_stream.time_of_end(end));
                }
                at = end;
            }
            for ((session, sent), answered) in commands.into_iter().zip(replies) {
                if let (Some(sent_ns), Some(answered_ns)) = (sent, answered) {
                    calls.push(RedisCall {
                        sent_ns,
                        answered_ns,
                        session,
                    });
                }
            }
        }
    }
    // Each session's calls in order; a refresh takes the first one sent after its request.
    let mut by_session: HashMap<(String, String), VecDeque<&RedisCall>> = HashMap::new();
    calls.sort_by_key(|c| c.sent_ns);
    for call in &calls {
        if let Some(session) = &call.session {
            by_session
                .entry(session.clone())
                .or_default()
                .push_back(call);
        }
    }
    requests.sort_by_key(|r| r.0);
    let first = requests.first().map_or(0, |r| r.0);
    let skip_ns = (args.skip_s.max(0.0) * 1e9) as u64;
    let (mut refreshes, mut unmatched, mut out_of_order) = (Vec::new(), 0, 0);
    for (request_ns, response_ns, session) in requests {
        let queue = by_session.entry(session).or_default();
        while queue.front().is_some_and(|c| c.sent_ns < request_ns) {
            queue.pop_front();
        }
        // A call sent after the response is a later refresh's: this one's is not in the
        // capture, and the later one keeps its call.
        let Some(call) = queue
            .front()
            .is_some_and(|c| c.sent_ns <= response_ns)
            .then(|| queue.pop_front())
            .flatten()
        else {
            unmatched += 1;
            continue;
        };
        if call.answered_ns < call.sent_ns || response_ns < call.answered_ns {
            out_of_order += 1;
            continue;
        }
        if request_ns >= first + skip_ns {
            refreshes.push(Refresh {
                request_ns,
                command_ns: call.sent_ns,
                reply_ns: call.answered_ns,
                response_ns,
            });
        }
    }
    if refreshes.is_empty() && packets > 0 {
        warn_nothing_matched(unmatched, out_of_order);
    }
    Ok(summarise(
        &refreshes,
        args.slow_ms,
        WireResult {
            kind: "wire".into(),
            label: String::new(),
            packets,
            refreshes: 0,
            unmatched,
            out_of_order,
            streams_cut,
            redis_mid_stream,
            parts: BTreeMap::new(),
            slow_ms: args.slow_ms,
            slow: 0,
            slow_share: BTreeMap::new(),
            slow_largest: BTreeMap::new(),
            slices: Vec::new(),
        },
    ))
}

fn warn_nothing_matched(unmatched: usize, out_of_order: usize) {
    eprintln!(
        "loadgen wire: no refresh matched its Redis call ({unmatched} unmatched, \
         {out_of_order} out of order): are the ports right?"
    );
}

fn summarise(refreshes: &[Refresh], slow_ms: f64, mut result: WireResult) -> WireResult {
    result.refreshes = refreshes.len();
    let parts: Vec<[f64; 4]> = refreshes.iter().map(Refresh::parts_us).collect();
    for (i, name) in PART_NAMES.iter().enumerate() {
        let mut values: Vec<f64> = parts.iter().map(|p| p[i]).collect();
        values.sort_by(f64::total_cmp);
        result.parts.insert((*name).into(), spread(&values));
    }
    let slow_us = slow_ms * 1_000.0;
    let slow: Vec<&[f64; 4]> = parts.iter().filter(|p| p[0] > slow_us).collect();
    result.slow = slow.len();
    let summed: f64 = slow.iter().map(|p| p[0]).sum();
    for (i, name) in PART_NAMES.iter().enumerate().skip(1) {
        let part: f64 = slow.iter().map(|p| p[i]).sum();
        result.slow_share.insert(
            (*name).into(),
            if summed > 0.0 { part / summed } else { 0.0 },
        );
        // A tie goes to the earlier part, so that the counts add up to the slow ones.
        let largest = slow
            .iter()
            .filter(|p| (1..4).all(|j| p[i] > p[j] || (p[i] == p[j] && i <= j)))
            .count();
        result.slow_largest.insert((*name).into(), largest);
    }
    let first = refreshes.iter().map(|r| r.request_ns).min().unwrap_or(0);
    let mut slices: BTreeMap<u64, WireSlice> = BTreeMap::new();
    for (r, p) in refreshes.iter().zip(&parts) {
        let index = (r.request_ns - first) / SLICE_NS;
        let slice = slices.entry(index).or_insert(WireSlice {
            index,
            refreshes: 0,
            slow: 0,
            total_us: 0.0,
            before_redis_us: 0.0,
            redis_us: 0.0,
            after_redis_us: 0.0,
        });
        slice.refreshes += 1;
        slice.slow += usize::from(p[0] > slow_us);
        if p[0] > slice.total_us {
            [
                slice.total_us,
                slice.before_redis_us,
                slice.redis_us,
                slice.after_redis_us,
            ] = *p;
        }
    }
    result.slices = slices.into_values().filter(|s| s.slow > 0).collect();
    result
}

fn spread(sorted: &[f64]) -> Spread {
    let at = |q: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i]
    };
    Spread {
        p50_us: at(0.5),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: sorted.last().copied().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: u16 = 8080;
    const REDIS: u16 = 6390;
    const LOADGEN: u16 = 40000;
    const AUTH: u16 = 50000;

    /// A pcap file (Ethernet, IPv4, microseconds) of the given segments:
    /// (µs, source port, destination port, seq, SYN, payload)
    type Sent<'a> = (u64, u16, u16, u32, bool, &'a [u8]);

    fn pcap(segments: &[Sent<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&[2, 0, 4, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for &(us, sport, dport, seq, syn, payload) in segments {
            let mut frame = vec![0u8; 12];
            frame.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + 20 + payload.len()) as u16;
            frame.extend_from_slice(&[0x45, 0]);
            frame.extend_from_slice(&total.to_be_bytes());
            frame.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            frame.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
            frame.extend_from_slice(&sport.to_be_bytes());
            frame.extend_from_slice(&dport.to_be_bytes());
            frame.extend_from_slice(&seq.to_be_bytes());
            frame.extend_from_slice(&0u32.to_be_bytes());
            frame.extend_from_slice(&[0x50, if syn { 0x02 } else { 0x18 }, 0xff, 0xff, 0, 0, 0, 0]);
            frame.extend_from_slice(payload);
            let secs = (us / 1_000_000) as u32;
            out.extend_from_slice(&secs.to_le_bytes());
            out.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&frame);
        }
        out
    }

    fn args(slow_ms: f64) -> WireArgs {
        WireArgs {
            pcap: PathBuf::new(),
            http_port: HTTP,
            redis_port: REDIS,
            slow_ms,
            skip_s: 0.0,
            label: String::new(),
        }
    }

    fn refresh_request(user: &str, sid: &str) -> Vec<u8> {
        let body = format!(r#"{{"refresh_token":"{user}.{sid}.c2VjcmV0.bWFj"}}"#);
        format!(
            "POST /v1/refresh HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn response(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn evalsha(user: &str, sid: &str) -> Vec<u8> {
        let args = [
            "EVALSHA".to_owned(),
            "abc".into(),
            "2".into(),
            format!("auth:s:{{{user}}}:{sid}"),
            format!("auth:u:{{{user}}}"),
            "42".into(),
        ];
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        out
    }

    const PUSH: &[u8] = b">2\r\n$10\r\ninvalidate\r\n*0\r\n";
    const ROTATED: &[u8] = b"*3\r\n$7\r\nrotated\r\n$0\r\n\r\n_\r\n";

    fn analyse_bytes(file: &[u8], slow_ms: f64) -> WireResult {
        let segments = read_pcap(file).unwrap();
        analyse(&segments, &args(slow_ms)).unwrap()
    }

    #[test]
    fn a_refresh_is_split_into_its_wait_for_redis_redis_and_after() {
        let req = refresh_request("u1", "s1");
        let cmd = evalsha("u1", "s1");
        let resp = response(r#"{"access_token":"a"}"#);
        let file = pcap(&[
            (1_000, LOADGEN, HTTP, 99, true, b""),
            (1_000, AUTH, REDIS, 499, true, b""),
            (1_000, REDIS, AUTH, 899, true, b""),
            (2_000, LOADGEN, HTTP, 100, false, &req),
            (2_300, AUTH, REDIS, 500, false, &cmd),
            (9_300, REDIS, AUTH, 900, false, ROTATED),
            (9_500, HTTP, LOADGEN, 1, false, &resp),
        ]);
        let result = analyse_bytes(&file, 5.0);
        assert_eq!(result.refreshes, 1);
        assert_eq!(result.parts["total"].max_us, 7_500.0);
        assert_eq!(result.parts["before_redis"].max_us, 300.0);
        assert_eq!(result.parts["redis"].max_us, 7_000.0);
        assert_eq!(result.parts["after_redis"].max_us, 200.0);
        assert_eq!(result.slow, 1);
        assert_eq!(result.slow_largest["redis"], 1);
        assert!((result.slow_share["redis"] - 7_000.0 / 7_500.0).abs() < 1e-9);
        assert_eq!(result.slices.len(), 1);
        assert_eq!(result.slices[0].redis_us, 7_000.0);
        assert_eq!(
            (result.unmatched, result.out_of_order, result.streams_cut),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_message_split_over_segments_counts_from_its_last_byte_and_duplicates_are_dropped() {
        let req = refresh_request("u1", "s1");
        let cmd = evalsha("u1", "s1");
        let resp = response("{}");
        let (a, b) = cmd.split_at(10);
        let file = pcap(&[
            (1_000, LOADGEN, HTTP, 99, true, b""),
            (1_000, AUTH, REDIS, 499, true, b""),
            (2_000, LOADGEN, HTTP, 100, false, &req),
            (2_100, AUTH, REDIS, 500, false, a),
            // A retransmission of the first part, then the rest.
            (2_200, AUTH, REDIS, 500, false, a),
            (2_400, AUTH, REDIS, 510, false, b),
            (3_400, REDIS, AUTH, 1, false, ROTATED),
            (3_500, HTTP, LOADGEN, 1, false, &resp),
        ]);
        let result = analyse_bytes(&file, 5.0);
        assert_eq!(result.refreshes, 1);
        assert_eq!(result.parts["before_redis"].max_us, 400.0);
        assert_eq!(result.parts["redis"].max_us, 1_000.0);
        assert_eq!(result.slow, 0);
        assert!(result.slices.is_empty());
    }

    #[test]
    fn segments_out_of_order_are_put_back_in_order() {
        let req = refresh_request("u1", "s1");
        let cmd = evalsha("u1", "s1");
        let (a, b) = cmd.split_at(7);
        let file = pcap(&[
            (1_000, LOADGEN, HTTP, 99, true, b""),
            (1_000, AUTH, REDIS, 499, true, b""),
            (2_000, LOADGEN, HTTP, 100, false, &req),
            (2_100, AUTH, REDIS, 507, false, b),
            (2_300, AUTH, REDIS, 500, false, a),
            (2_600, REDIS, AUTH, 1, false, ROTATED),
            (2_700, HTTP, LOADGEN, 1, false, &response("{}")),
        ]);
        let result = analyse_bytes(&file, 5.0);
        assert_eq!(result.refreshes, 1);
        // Whole once its first part came.
        assert_eq!(result.parts["before_redis"].max_us, 300.0);
    }

    #[test]
    fn redis_bytes_before_the_first_command_of_a_connection_caught_mid_stream_are_dropped() {
        let req = refresh_request("u1", "s1");
        let file = pcap(&[
            (1_000, LOADGEN, HTTP, 99, true, b""),
            // The reply to a command sent before the capture.
            (1_500, REDIS, AUTH, 7_000, false, b"+PONG\r\n"),
            (2_000, LOADGEN, HTTP, 100, false, &req),
            (2_100, AUTH, REDIS, 9_000, false, &evalsha("u1", "s1")),
            (2_600, REDIS, AUTH, 7_007, false, ROTATED),
            (2_700, HTTP, LOADGEN, 1, false, &response("{}")),
        ]);
        let result = analyse_bytes(&file, 5.0);
        assert_eq!(result.redis_mid_stream, 1);
        assert_eq!(result.refreshes, 1);
        assert_eq!(result.parts["redis"].max_us, 500.0);
    }

    const U2_COMMAND: u32 = 80;

    #[test]
    fn a_push_is_not_a_reply_and_another_sessions_call_is_not_taken() {
        let file = pcap(&[
            (1_000, LOADGEN, HTTP, 99, true, b""),
            (1_000, LOADGEN + 1, HTTP, 99, true, b""),
            (1_000, AUTH, REDIS, 499, true, b""),
            (
                2_000,
                LOADGEN,
                HTTP,
                100,
                false,
                &refresh_request("u1", "s1"),
            ),
            (
                2_010,
                LOADGEN + 1,
                HTTP,
                100,
                false,
                &refresh_request("u2", "s2"),
            ),
            (2_100, AUTH, REDIS, 500, false, &evalsha("u2", "s2")),
            (
                2_200,
                AUTH,
                REDIS,
                500 + U2_COMMAND,
                false,
                &evalsha("u1", "s1"),
            ),
            (2_300, REDIS, AUTH, 1, false, PUSH),
            (2_400, REDIS, AUTH, 1 + PUSH.len() as u32, false, ROTATED),
            (
                2_500,
                REDIS,
                AUTH,
                1 + (PUSH.len() + ROTATED.len()) as u32,
                false,
                ROTATED,
            ),
            (2_600, HTTP, LOADGEN + 1, 1, false, &response("{}")),
            (2_700, HTTP, LOADGEN, 1, false, &response("{}")),
        ]);
        assert_eq!(evalsha("u2", "s2").len() as u32, U2_COMMAND);
        let result = analyse_bytes(&file, 5.0);
        assert_eq!(result.refreshes, 2);
        // u1: request 2 000, command 2 200, reply 2 500 (the second), response 2 700.
        assert_eq!(result.parts["total"].max_us, 700.0);
        assert_eq!(result.parts["redis"].max_us, 300.0);
        assert_eq!(result.parts["redis"].p50_us, 300.0);
        // Each took its own session's call: swapped, u1 would wait 100 µs and u2 290.
        assert_eq!(result.parts["before_redis"].max_us, 200.0);
        assert_eq!(result.parts["after_redis"].max_us, 200.0);
    }

    #[test]
    fn a_refresh_whose_call_is_missing_does_not_take_the_next_refreshs_call() {
        let req = refresh_request("u1", "s1");
        let resp = response("{}");
        let second = 100 + req.len() as u32;
        let file = pcap(&[
            (1_000, LOADGEN, HTTP, 99, true, b""),
            (1_000, AUTH, REDIS, 499, true, b""),
            // The first refresh's call is not in the capture (another connection, say).
            (2_000, LOADGEN, HTTP, 100, false, &req),
            (2_500, HTTP, LOADGEN, 1, false, &resp),
            (3_000, LOADGEN, HTTP, second, false, &req),
            (3_100, AUTH, REDIS, 500, false, &evalsha("u1", "s1")),
            (3_400, REDIS, AUTH, 1, false, ROTATED),
            (3_600, HTTP, LOADGEN, 1 + resp.len() as u32, false, &resp),
        ]);
        let result = analyse_bytes(&file, 5.0);
        assert_eq!((result.unmatched, result.out_of_order), (1, 0));
        assert_eq!(result.refreshes, 1);
        assert_eq!(result.parts["total"].max_us, 600.0);
        assert_eq!(result.parts["redis"].max_us, 300.0);
    }

    #[test]
    fn missing_bytes_cut_the_stream_and_the_result_says_so() {
        let req = refresh_request("u1", "s1");
        let file = pcap(&[
            (1_000, LOADGEN, HTTP, 99, true, b""),
            (2_000, LOADGEN, HTTP, 200, false, &req),
        ]);
        let result = analyse_bytes(&file, 5.0);
        assert_eq!(result.streams_cut, 1);
        assert_eq!(result.refreshes, 0);
    }

    #[test]
    fn chunked_bodies_and_resp3_values_are_read_whole() {
        let data = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let messages = http_messages(data);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].body, b"abcde");
        assert_eq!(messages[1].end, data.len());
        let resp3 = b"%1\r\n+a\r\n*2\r\n:1\r\n$-1\r\n|1\r\n+ttl\r\n:3\r\n,1.5\r\n";
        let (end, push) = resp_value_end(resp3, 0).unwrap();
        assert!(!push);
        let (end, _) = resp_value_end(resp3, end).unwrap();
        assert_eq!(end, resp3.len());
        assert_eq!(resp_value_end(b"$5\r\nab", 0), None);
    }

    #[test]
    fn the_session_of_a_command_is_its_session_key() {
        let (args, end) = resp_command(&evalsha("u-1", "s_9"), 0).unwrap();
        assert_eq!(end, evalsha("u-1", "s_9").len());
        assert_eq!(session_of(&args), Some(("u-1".into(), "s_9".into())));
        assert_eq!(
            session_of(&[b"GET".to_vec(), b"auth:u:{u1}".to_vec()]),
            None
        );
    }
}
