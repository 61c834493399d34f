//! `oxwsgi status`: reads a running server's `/status` from its admin
//! address and prints a table of groups → processes (pid, title,
//! busy/threads, requests, rss, age) with each group's queue and restarts,
//! like uwsgitop; `--watch` redraws it every `--interval` seconds until
//! Ctrl-C, `--json` prints the document as the server sent it.
//!
//! The HTTP client is a plain HTTP/1.0 GET over a std `TcpStream` with
//! connect and read timeouts: the admin listener is local and answers with
//! a complete body, so nothing more is needed.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::admin::status_json::{Group, Status};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer `status` reads.
const MAX_ANSWER: u64 = 16 << 20;

/// Why `status` could not show anything.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot reach the admin endpoint at {addr}: {source} (is the server running with `admin = \"{addr}\"`?)")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin endpoint at {addr}: {message}")]
    Answer { addr: SocketAddr, message: String },
}

/// GETs `path` from the admin address; returns the body of a 200 answer.
pub fn fetch(addr: SocketAddr, path: &str) -> Result<String, StatusError> {
    let connect = |source| StatusError::Connect { addr, source };
    let answer = |message: String| StatusError::Answer { addr, message };
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(connect)?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(connect)?;
    stream
        .set_write_timeout(Some(READ_TIMEOUT))
        .map_err(connect)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(connect)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut raw)
        .map_err(|e| answer(format!("reading the answer: {e}")))?;
    let (code, body) = parse_response(&raw).map_err(answer)?;
    if code != 200 {
        return Err(answer(format!("{path} answered {code}: {}", body.trim())));
    }
    Ok(body)
}

/// Splits an HTTP/1.x answer into its status code and body.
fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "incomplete HTTP answer".to_owned())?;
    let code = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {}", head.lines().next().unwrap_or("")))?;
    Ok((code, body.to_owned()))
}

/// Fetches and decodes `/status`.
pub fn fetch_status(addr: SocketAddr) -> Result<(String, Status), StatusError> {
    let body = fetch(addr, "/status")?;
    let status = serde_json::from_str(&body).map_err(|e| StatusError::Answer {
        addr,
        message: format!("/status is not the expected JSON: {e}"),
    })?;
    Ok((body, status))
}

/// Runs the subcommand; returns the exit code (0 shown, 2 unreachable).
pub fn run(addr: SocketAddr, json: bool, watch: Option<Duration>) -> u8 {
    loop {
        let shown = fetch_status(addr).map(|(raw, status)| {
            if json {
                raw
            } else {
                render(&status, addr, now())
            }
        });
        match (shown, watch) {
            (Ok(text), None) => {
                print!("{text}");
                return 0;
            }
            (Err(error), None) => {
                eprintln!("oxwsgi: {error}");
                return 2;
            }
            (shown, Some(interval)) => {
                // Clear the screen and home the cursor, then draw.
                let text = shown.unwrap_or_else(|error| format!("oxwsgi: {error}\n"));
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\x1b[H\x1b[2J{text}");
                let _ = out.flush();
                drop(out);
                std::thread::sleep(interval);
            }
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The table: one block per group, one row per process, its requests in
/// flight (path and age) under it.
pub fn render(status: &Status, addr: SocketAddr, now: f64) -> String {
    let mut out = String::new();
    let server = &status.server;
    let state = if server.stopping {
        "stopping"
    } else if server.ready {
        "ready"
    } else {
        "starting"
    };
    let _ = writeln!(
        out,
        "oxwsgi at {addr}  pid {}  {state}  up {}",
        server.pid,
        age(now - server.started_at)
    );
    for group in &status.groups {
        out.push('\n');
        render_group(&mut out, group, now);
    }
    out
}

fn render_group(out: &mut String, group: &Group, now: f64) {
    let ready = group.processes.iter().filter(|p| p.accepting).count();
    let total_threads: usize = group.processes.iter().map(|p| p.threads).sum();
    let restarts = if group.restarts_by_reason.is_empty() {
        "0".to_owned()
    } else {
        let reasons: Vec<String> = group
            .restarts_by_reason
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        format!("{} ({})", group.restarts, reasons.join(", "))
    };
    let queue = if group.queued > 0 {
        format!(
            "{} (oldest {})",
            group.queued,
            age_precise(group.oldest_wait).trim_start()
        )
    } else {
        "0".to_owned()
    };
    let processes = match &group.scaling {
        Some(s) => format!(
            "{ready}/{} (elastic {}..{})",
            s.target, s.min_processes, s.max_processes
        ),
        None => format!("{ready}/{}", group.configured_processes),
    };
    let _ = writeln!(
        out,
        "GROUP {}  processes {processes}  busy {}/{total_threads}  queued {queue}  \
         wait {}  restarts {restarts}",
        group.name,
        group.busy,
        wait(group.mean_wait)
    );
    let _ = writeln!(
        out,
        "  {:<8} {:<24} {:>9} {:>9} {:>9} {:>8}",
        "PID", "TITLE", "BUSY", "REQUESTS", "RSS", "AGE"
    );
    for process in &group.processes {
        let mut title = process.title.clone();
        if !process.accepting {
            title.push_str(" [draining]");
        }
        let _ = writeln!(
            out,
            "  {:<8} {:<24} {:>9} {:>9} {:>9} {:>8}",
            process.pid,
            truncate(&title, 24),
            format!("{}/{}", process.busy, process.threads),
            process.requests,
            process.rss.map_or_else(|| "-".to_owned(), size),
            age(now - process.started_at),
        );
        // Longest-running first: the one to look at.
        let mut current: Vec<_> = process.current.iter().collect();
        current.sort_by(|a, b| b.age.total_cmp(&a.age));
        for current in current {
            let _ = writeln!(
                out,
                "           {} {}",
                age_precise(current.age),
                truncate(&current.path, 60)
            );
        }
    }
    if group.starting > 0 {
        let _ = writeln!(out, "  ({} starting)", group.starting);
    }
    if group.import_failures > 0 {
        let _ = writeln!(
            out,
            "  ({} with an application that failed to import: see the error log)",
            group.import_failures
        );
    }
    if let Some(scaling) = &group.scaling {
        // The latest few, newest first.
        for event in scaling.events.iter().rev().take(SCALE_EVENTS_SHOWN) {
            let _ = writeln!(
                out,
                "  scaled {:<4} {} → {}  {} ago  {}",
                event.direction,
                event.from,
                event.to,
                age(now - event.at),
                event.detail
            );
        }
    }
}

/// How many of an elastic group's scale events the table shows.
const SCALE_EVENTS_SHOWN: usize = 5;

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// `512K`, `45.2M`, `1.3G`.
fn size(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K * K {
        format!("{:.0}K", b / K)
    } else if b < K * K * K {
        format!("{:.1}M", b / K / K)
    } else {
        format!("{:.1}G", b / K / K / K)
    }
}

/// `42s`, `3m05s`, `2h03m`, `4d02h`.
fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// A mean queue wait: `13µs`, `35ms`, `1.25s`.
fn wait(seconds: f64) -> String {
    if seconds < 0.001 {
        format!("{:.0}µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.0}ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2}s")
    }
}

/// A request's age with tenths under a minute: `0.3s`, `12.0s`, `2m05s`.
fn age_precise(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{:>5.1}s", seconds.max(0.0))
    } else {
        format!("{:>6}", age(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::status_json::{Current, Process, Server};

    fn sample() -> Status {
        Status {
            routes: Vec::new(),
            server: Server {
                pid: 100,
                started_at: 1000.0,
                ready: true,
                stopping: false,
            },
            groups: vec![Group {
                name: "app_one".into(),
                configured_processes: 2,
                threads: 15,
                processes: vec![
                    Process {
                        pid: 4242,
                        title: "(wsgi:app_one)".into(),
                        threads: 15,
                        busy: 1,
                        requests: 1042,
                        started_at: 1100.0,
                        rss: Some(45 << 20),
                        accepting: true,
                        current: vec![Current {
                            path: "/api/slow".into(),
                            age: 3.21,
                        }],
                    },
                    Process {
                        pid: 4243,
                        title: "(wsgi:app_one)".into(),
                        threads: 15,
                        busy: 0,
                        requests: 7,
                        started_at: 4000.0,
                        rss: None,
                        accepting: true,
                        current: vec![],
                    },
                ],
                starting: 0,
                import_failures: 0,
                queued: 3,
                oldest_wait: 1.25,
                mean_wait: 0.0153,
                busy: 1,
                idle: 29,
                restarts: 1,
                restarts_by_reason: [("crash".to_owned(), 1)].into_iter().collect(),
                target_processes: 2,
                scaling: None,
            }],
        }
    }

    #[test]
    fn table() {
        let text = render(&sample(), "127.0.0.1:9100".parse().unwrap(), 4600.0);
        let expected = "\
oxwsgi at 127.0.0.1:9100  pid 100  ready  up 1h00m

GROUP app_one  processes 2/2  busy 1/30  queued 3 (oldest 1.2s)  wait 15ms  restarts 1 (crash 1)
  PID      TITLE                         BUSY  REQUESTS       RSS      AGE
  4242     (wsgi:app_one)                1/15      1042     45.0M   58m20s
             3.2s /api/slow
  4243     (wsgi:app_one)                0/15         7         -   10m00s
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn elastic_group() {
        use crate::admin::status_json::{ScaleEvent, Scaling};
        let mut status = sample();
        status.groups[0].scaling = Some(Scaling {
            min_processes: 1,
            max_processes: 4,
            spare_threads: 0,
            current: 2,
            target: 3,
            events: vec![ScaleEvent {
                at: 4588.0,
                direction: "up".into(),
                from: 2,
                to: 3,
                reason: "queue".into(),
                detail: "4 request(s) waiting for a thread, 30 thread(s) busy".into(),
            }],
        });
        let text = render(&status, "127.0.0.1:9100".parse().unwrap(), 4600.0);
        assert!(text.contains("processes 2/3 (elastic 1..4)"), "{text}");
        assert!(
            text.contains("  scaled up   2 → 3  12s ago  4 request(s) waiting"),
            "{text}"
        );
    }

    #[test]
    fn units() {
        assert_eq!(size(512 * 1024), "512K");
        assert_eq!(size(3 << 30), "3.0G");
        assert_eq!(age(59.9), "59s");
        assert_eq!(age(90000.0), "1d01h");
        assert_eq!(age(-3.0), "0s");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(wait(0.0002), "200µs");
        assert_eq!(wait(0.0), "0µs");
        assert_eq!(wait(0.035), "35ms");
        assert_eq!(wait(1.254), "1.25s");
    }

    #[test]
    fn answers_are_parsed() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\nstarting\n";
        assert_eq!(parse_response(raw).unwrap(), (503, "starting\n".to_owned()));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn unreachable_is_an_error() {
        // A port that was just free: nothing listens there.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        assert!(matches!(
            fetch(addr, "/status"),
            Err(StatusError::Connect { .. })
        ));
    }
}
