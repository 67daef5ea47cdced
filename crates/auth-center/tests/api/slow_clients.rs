//! Slow, idle and oversized clients cost the server a bounded time: half-sent request heads,
//! idle kept-alive connections, stalled or oversized bodies, and connections left open at
//! shutdown. The tests speak raw HTTP/1.1 over a `TcpStream` so they can stop mid-request,
//! and set the `[http]` timeouts small; the only time bounds are generous polling limits.

use auth_center::Config;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        connection_settings_that_cannot_work_are_refused,
    ],
}

async fn connection_settings_that_cannot_work_are_refused(_backend: Backend) {
    type Tweak = fn(&mut Config);
    let tweaks: [(&str, Tweak); 6] = [
        ("no connections", |c| c.http.max_connections = 0),
        ("no header time", |c| c.http.header_read_timeout_ms = 0),
        ("no idle time", |c| c.http.idle_timeout_ms = 0),
        ("no body time", |c| c.http.body_read_timeout_ms = 0),
        ("body time past the request timeout", |c| {
            c.http.body_read_timeout_ms = 15_000
        }),
        ("a grace of hours", |c| c.http.shutdown_grace_ms = 3_600_000),
    ];
    for (what, tweak) in tweaks {
        let mut config = Config::default();
        tweak(&mut config);
        assert!(config.validate().is_err(), "{what} was accepted");
    }
    assert!(Config::default().validate().is_ok());
}
