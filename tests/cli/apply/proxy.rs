//! A logging proxy between lapse and moto: it forwards every request, records each mutating
//! IAM call it passed on, can kill the lapse process at the k-th mutating call (before the call
//! reaches moto, or after moto made the change but before lapse hears back), and can replace
//! secrets in responses with canary strings.
//!
//! One request per connection (`Connection: close` both ways) keeps the HTTP handling plain.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// The IAM operations that change something: one list, shared with the fault proxy.
use lapse_provider_aws::testing::MUTATIONS;

/// Parameters worth naming in the log.
const NAMED: &[&str] = &[
    "UserName",
    "RoleName",
    "GroupName",
    "AccessKeyId",
    "Status",
    "PolicyArn",
    "PolicyName",
];

/// Where the proxy kills lapse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KillPoint {
    /// On receiving the call: it never reaches moto.
    BeforeCall,
    /// After moto made the change, before lapse hears back.
    AfterCall,
}

#[derive(Default)]
struct State {
    upstream: String,
    /// Mutating calls forwarded to moto, in order.
    forwarded: Mutex<Vec<String>>,
    /// Mutating calls received (forwarded or not).
    received: AtomicUsize,
    kill: Mutex<Option<(usize, KillPoint)>>,
    pid: Mutex<Option<u32>>,
    /// Connections of a killed process, kept open so it can never read a response.
    held: Mutex<Vec<TcpStream>>,
    /// XML elements whose text is replaced in every response.
    replace: Mutex<Vec<(String, String)>>,
    /// Responses in which an element was replaced.
    replaced: AtomicUsize,
    /// Every request head, to see which credentials lapse signed with.
    heads: Mutex<Vec<String>>,
    /// Mutating calls still to be answered with a throttling error (and `Retry-After`).
    throttle: AtomicUsize,
    /// What happened to each mutating call, with its status line, for failure messages.
    events: Mutex<Vec<String>>,
    started: std::sync::OnceLock<std::time::Instant>,
}

/// A running proxy.
pub(crate) struct Proxy {
    pub(crate) endpoint: String,
    state: Arc<State>,
}

impl Proxy {
    /// Listens on a free port and forwards to `upstream` (`http://127.0.0.1:PORT`).
    pub(crate) fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(State {
            upstream: upstream.trim_start_matches("http://").to_owned(),
            ..State::default()
        });
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || handle(&state, stream));
            }
        });
        Proxy { endpoint, state }
    }

    /// Kill the watched process at the `at`-th mutating call from now (1-based).
    pub(crate) fn kill_at(&self, at: usize, point: KillPoint) {
        self.state.received.store(0, Ordering::SeqCst);
        *self.state.kill.lock().expect("lock") = Some((at, point));
    }

    /// No kill.
    pub(crate) fn disarm(&self) {
        *self.state.kill.lock().expect("lock") = None;
    }

    /// The process to kill.
    pub(crate) fn watch(&self, pid: u32) {
        *self.state.pid.lock().expect("lock") = Some(pid);
    }

    /// Replaces the text of `<element>` in every response with `value`.
    pub(crate) fn replace(&self, element: &str, value: &str) {
        self.state
            .replace
            .lock()
            .expect("lock")
            .push((element.to_owned(), value.to_owned()));
    }

    /// The mutating calls forwarded to moto so far, as `Operation Name=value ...`.
    pub(crate) fn forwarded(&self) -> Vec<String> {
        self.state.forwarded.lock().expect("lock").clone()
    }

    /// Answers the next `count` mutating calls with `Throttling` and `Retry-After: 1`, without
    /// passing them on.
    pub(crate) fn throttle(&self, count: usize) {
        self.state.throttle.store(count, Ordering::SeqCst);
    }

    /// What happened to each mutating call so far (received, throttled, forwarded with
    /// moto's status line, killed), with milliseconds since the proxy started.
    pub(crate) fn events(&self) -> Vec<String> {
        self.state.events.lock().expect("lock").clone()
    }

    /// Mutating calls received, throttled ones included.
    pub(crate) fn received(&self) -> usize {
        self.state.received.load(Ordering::SeqCst)
    }

    /// Responses in which [`Proxy::replace`] replaced something.
    pub(crate) fn replaced(&self) -> usize {
        self.state.replaced.load(Ordering::SeqCst)
    }

    /// Requests whose head holds `text` (a header value such as a session token).
    pub(crate) fn requests_with(&self, text: &str) -> usize {
        self.state
            .heads
            .lock()
            .expect("lock")
            .iter()
            .filter(|head| head.contains(text))
            .count()
    }
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// `Operation Name=value ...` for a form-encoded IAM request.
fn describe(body: &str) -> Option<(String, String)> {
    let params = lapse_provider_aws::testing::form(body.as_bytes());
    let action = params
        .iter()
        .find(|(key, _)| key == "Action")
        .map(|(_, value)| value.clone())?;
    let mut line = action.clone();
    for name in NAMED {
        if let Some((_, value)) = params.iter().find(|(key, _)| key == name) {
            line.push_str(&format!(" {name}={value}"));
        }
    }
    Some((action, line))
}

fn read_message(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let length: usize = header_value(&head, "content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// The head with `Connection: close` and, when given, a new `Content-Length`.
fn rewrite_head(head: &str, length: Option<usize>) -> String {
    let mut lines: Vec<String> = head
        .trim_end()
        .lines()
        .filter(|line| {
            let name = line.split(':').next().unwrap_or("").trim();
            let replaced = name.eq_ignore_ascii_case("connection")
                || (length.is_some() && name.eq_ignore_ascii_case("content-length"));
            !replaced
        })
        .map(str::to_owned)
        .collect();
    lines.push("Connection: close".to_owned());
    if let Some(length) = length {
        lines.push(format!("Content-Length: {length}"));
    }
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

fn kill(state: &State, client: TcpStream) {
    state.held.lock().expect("lock").push(client);
    if let Some(pid) = *state.pid.lock().expect("lock") {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

fn event(state: &State, text: String) {
    let started = state.started.get_or_init(std::time::Instant::now);
    state
        .events
        .lock()
        .expect("lock")
        .push(format!("{:>6}ms {text}", started.elapsed().as_millis()));
}

fn handle(state: &State, client: TcpStream) {
    let Ok(reading) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reading);
    let Some((head, body)) = read_message(&mut reader) else {
        return;
    };
    state.heads.lock().expect("lock").push(head.clone());
    let described = describe(&String::from_utf8_lossy(&body));
    let mutation = described
        .as_ref()
        .filter(|(action, _)| MUTATIONS.contains(&action.as_str()))
        .map(|(_, line)| line.clone());
    let mut kill_after = false;
    if let Some(line) = &mutation {
        let count = state.received.fetch_add(1, Ordering::SeqCst) + 1;
        event(state, format!("received #{count} {line}"));
        match *state.kill.lock().expect("lock") {
            Some((at, KillPoint::BeforeCall)) if at == count => {
                kill(state, client);
                return;
            }
            Some((at, KillPoint::AfterCall)) if at == count => kill_after = true,
            _ => {}
        }
        let throttled = state
            .throttle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if throttled {
            let body = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>proxy</RequestId></ErrorResponse>";
            let mut client = client;
            let _ = write!(
                client,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/xml\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            return;
        }
    }
    let Ok(mut upstream) = TcpStream::connect(&state.upstream) else {
        return;
    };
    let request = rewrite_head(&head, None);
    if upstream.write_all(request.as_bytes()).is_err() || upstream.write_all(&body).is_err() {
        return;
    }
    let mut response = Vec::new();
    if upstream.read_to_end(&mut response).is_err() {
        return;
    }
    if let Some(line) = mutation {
        let status = String::from_utf8_lossy(&response)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        event(state, format!("forwarded {line} -> {status}"));
        state.forwarded.lock().expect("lock").push(line);
    }
    if kill_after {
        kill(state, client);
        return;
    }
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(response.len(), |index| index + 4);
    let response_head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut response_body = String::from_utf8_lossy(&response[split..]).into_owned();
    for (element, value) in state.replace.lock().expect("lock").iter() {
        let open = format!("<{element}>");
        let close = format!("</{element}>");
        if let (Some(start), Some(end)) = (response_body.find(&open), response_body.find(&close))
            && start < end
        {
            response_body.replace_range(start + open.len()..end, value);
            state.replaced.fetch_add(1, Ordering::SeqCst);
        }
    }
    let head = rewrite_head(&response_head, Some(response_body.len()));
    let mut client = client;
    let _ = client.write_all(head.as_bytes());
    let _ = client.write_all(response_body.as_bytes());
}
