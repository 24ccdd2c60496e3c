//! A moto server for tests: the real AWS emulator, one fresh server per test, on 127.0.0.1 with
//! a port the OS picks. `scripts/test` installs the pinned moto into a virtual environment and
//! exports `LAPSE_MOTO_PYTHON`; without it the test fails and says how to install moto.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Starts moto's threaded server, prints its port, and serves until its stdin closes.
const LAUNCHER: &str = r#"
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"#;

/// A running moto server; stopped when dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("LAPSE_MOTO_PYTHON") {
        return PathBuf::from(python);
    }
    // Where `scripts/test` puts it for a default target folder.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/moto-venv/bin/python")
}

impl MotoServer {
    /// Starts a fresh server with AWS-managed policies loaded (as IAM has them).
    ///
    /// # Panics
    /// When moto is not installed or does not start: these tests need it.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a fresh server with extra moto settings (`INITIAL_NO_AUTH_ACTION_COUNT` turns on
    /// IAM policy enforcement after that many calls).
    ///
    /// # Panics
    /// When moto is not installed or does not start: these tests need it.
    #[must_use]
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        let python = python();
        let mut child = Command::new(&python)
            .args(["-c", LAUNCHER])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .envs(settings.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start moto with {}: {error}. Run scripts/test, which installs the pinned moto, or set LAPSE_MOTO_PYTHON",
                    python.display()
                )
            });
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let port: u16 = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "moto did not report its port (got {line:?}); is moto installed for {}?",
                python.display()
            )
        });
        MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Closing stdin lets the server stop cleanly; kill is the fallback.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// IAM operations that change something: what a fault proxy counts as mutating.
pub const MUTATIONS: &[&str] = &[
    "UpdateAccessKey",
    "DeleteAccessKey",
    "DeleteLoginProfile",
    "DetachUserPolicy",
    "DetachRolePolicy",
    "DetachGroupPolicy",
    "AttachUserPolicy",
    "AttachRolePolicy",
    "AttachGroupPolicy",
    "DeleteUserPolicy",
    "DeleteRolePolicy",
    "DeleteGroupPolicy",
    "PutUserPolicy",
    "PutRolePolicy",
    "PutGroupPolicy",
    "RemoveUserFromGroup",
    "AddUserToGroup",
];

/// A fault a [`FaultProxy`] puts between a client and moto.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Accept the connection and read the request, then never answer.
    Hang,
    /// Close the connection with a TCP reset, no answer.
    Reset,
    /// `503 Service Unavailable` with a load balancer's HTML page.
    ServerError,
    /// `400` with IAM's `Throttling` error, every time.
    Throttle,
    /// moto's answer with its body cut in half (the `Content-Length` matching the cut body).
    Truncate,
    /// `200` with an empty body.
    Empty,
    /// `200` with a body that is not XML.
    Garbage,
}

impl Fault {
    /// Every fault, for matrices.
    pub const ALL: [Fault; 7] = [
        Fault::Hang,
        Fault::Reset,
        Fault::ServerError,
        Fault::Throttle,
        Fault::Truncate,
        Fault::Empty,
        Fault::Garbage,
    ];
}

/// Which requests a fault hits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every request.
    Everything,
    /// Every request for this API operation (`GetAccountAuthorizationDetails`).
    Operation(String),
    /// The `page`-th page (1-based) of `GetAccountAuthorizationDetails` as the proxy pages it
    /// (see [`Paging`]); the other pages pass.
    AuthorizationPage(usize),
    /// Every request that changes nothing, except `sts:GetCallerIdentity`: the account's
    /// bulk reads and the reads an action makes before and after its change.
    Reads,
    /// The reads of one target an action makes before and after its change
    /// ([`ACTION_READS`]), not the account's bulk reads.
    ActionReads,
}

/// What an action reads of its one target (a principal, its policies, memberships and keys).
pub const ACTION_READS: &[&str] = &[
    "GetUser",
    "GetRole",
    "GetGroup",
    "ListAttachedUserPolicies",
    "ListAttachedRolePolicies",
    "ListAttachedGroupPolicies",
    "ListGroupsForUser",
    "GetUserPolicy",
    "GetRolePolicy",
    "GetGroupPolicy",
    "ListAccessKeys",
    "GetAccessKeyLastUsed",
    "GetLoginProfile",
];

/// moto answers `GetAccountAuthorizationDetails` in one page whatever `MaxItems` says; the proxy
/// can split that answer into four pages (users, groups, roles, policies) joined by markers, as
/// IAM pages a large account, and can break the paging itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Paging {
    /// moto's answer as it is.
    #[default]
    Off,
    /// Four pages with `IsTruncated` and `Marker` as IAM sends them.
    Pages,
    /// Every page says `IsTruncated=true` with the same marker: a pager that never ends.
    RepeatMarker,
    /// The first page has users and no `IsTruncated` element.
    NoTruncatedFlag,
    /// The first page says `IsTruncated=true` and has no `Marker`.
    NoMarker,
}

/// Names of the four top-level lists of an authorization details answer, one per page.
const DETAIL_LISTS: [&str; 4] = [
    "UserDetailList",
    "GroupDetailList",
    "RoleDetailList",
    "Policies",
];

#[derive(Default)]
struct ProxyState {
    upstream: String,
    fault: std::sync::Mutex<Option<(Fault, Target)>>,
    paging: std::sync::Mutex<Paging>,
    /// `Retry-After` seconds sent with [`Fault::Throttle`].
    retry_after: std::sync::Mutex<Option<u64>>,
    /// (operation, text, replacement) applied to moto's answers.
    rewrite: std::sync::Mutex<Option<(String, String, String)>>,
    /// Every request received, as its operation name (`?` when it had none).
    requests: std::sync::Mutex<Vec<String>>,
    /// Mutating calls forwarded to moto, as `Operation Name=value ...`.
    forwarded: std::sync::Mutex<Vec<String>>,
    /// Connections left unanswered by [`Fault::Hang`], kept open until the proxy stops.
    held: std::sync::Mutex<Vec<std::net::TcpStream>>,
    stopping: std::sync::atomic::AtomicBool,
}

/// A proxy between a client and moto that injects one [`Fault`] into chosen requests, can page
/// `GetAccountAuthorizationDetails` ([`Paging`]), and records every request and every mutating
/// call it passed on. One request per connection (`Connection: close` both ways) keeps its HTTP
/// plain. It stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    address: std::net::SocketAddr,
    state: std::sync::Arc<ProxyState>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultProxy")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://127.0.0.1:PORT`).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    #[must_use]
    pub fn start(upstream: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("local address");
        let state = std::sync::Arc::new(ProxyState {
            upstream: upstream.trim_start_matches("http://").to_owned(),
            ..ProxyState::default()
        });
        let shared = std::sync::Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = std::sync::Arc::clone(&shared);
                std::thread::spawn(move || proxy_one(&state, stream));
            }
        });
        FaultProxy {
            endpoint: format!("http://{address}"),
            address,
            state,
        }
    }

    /// Injects `fault` into the requests `target` names from now on; `None` passes everything.
    pub fn set_fault(&self, fault: Option<(Fault, Target)>) {
        *lock(&self.state.fault) = fault;
    }

    /// How `GetAccountAuthorizationDetails` is paged from now on.
    pub fn set_paging(&self, paging: Paging) {
        *lock(&self.state.paging) = paging;
    }

    /// Sends `Retry-After: <seconds>` with every throttling answer from now on.
    pub fn set_retry_after(&self, seconds: Option<u64>) {
        *lock(&self.state.retry_after) = seconds;
    }

    /// Replaces `text` with `replacement` in moto's answers to `operation` from now on (an
    /// answer that is whole but says something else: a report that is never ready).
    pub fn set_rewrite(&self, operation: &str, text: &str, replacement: &str) {
        *lock(&self.state.rewrite) = Some((
            operation.to_owned(),
            text.to_owned(),
            replacement.to_owned(),
        ));
    }

    /// Requests received so far for `operation` (each attempt counts).
    #[must_use]
    pub fn requests_for(&self, operation: &str) -> usize {
        lock(&self.state.requests)
            .iter()
            .filter(|name| *name == operation)
            .count()
    }

    /// Every request received so far, as operation names in order.
    #[must_use]
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state.requests).clone()
    }

    /// Mutating calls forwarded to moto so far, as `Operation Name=value ...`.
    #[must_use]
    pub fn forwarded_mutations(&self) -> Vec<String> {
        lock(&self.state.forwarded).clone()
    }

    /// Forgets the requests and mutations recorded so far.
    pub fn clear_records(&self) {
        lock(&self.state.requests).clear();
        lock(&self.state.forwarded).clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect(self.address);
        for stream in lock(&self.state.held).drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Decodes one `application/x-www-form-urlencoded` value.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[index + 1..index + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parameters of a form-encoded IAM request, decoded, in order.
#[must_use]
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (form_decode(key), form_decode(value)))
        .collect()
}

fn parameter<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Looks at one whole request without taking it from the socket: (head, body, its length in
/// bytes). Taking it ([`consume`]) is a separate step, so that a reset can close the socket with
/// the request unread, which makes the kernel answer with a TCP reset.
fn peek_request(stream: &std::net::TcpStream) -> Option<(String, Vec<u8>, usize)> {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let seen = stream.peek(&mut buffer).ok()?;
        if seen == 0 {
            return None;
        }
        if let Some(split) = buffer[..seen]
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&buffer[..split + 4]).into_owned();
            let length: usize = header(&head, "content-length")
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            let total = split + 4 + length;
            if seen >= total {
                return Some((head, buffer[split + 4..total].to_vec(), total));
            }
            if total > buffer.len() {
                buffer.resize(total, 0);
            }
        } else if seen == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        // The rest of the request is still on its way: peek returns at once while bytes wait
        // unread, so give the sender a moment.
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Takes `length` bytes of a request from the socket.
fn consume(mut stream: &std::net::TcpStream, length: usize) -> Option<()> {
    use std::io::Read;
    let mut sink = vec![0; length];
    stream.read_exact(&mut sink).ok()
}

/// The head with `Connection: close` and, when given, a new `Content-Length`.
fn close_head(head: &str, length: Option<usize>) -> String {
    let mut lines: Vec<String> = head
        .trim_end()
        .lines()
        .filter(|line| {
            let name = line.split(':').next().unwrap_or("").trim();
            !(name.eq_ignore_ascii_case("connection")
                || (length.is_some() && name.eq_ignore_ascii_case("content-length")))
        })
        .map(str::to_owned)
        .collect();
    lines.push("Connection: close".to_owned());
    if let Some(length) = length {
        lines.push(format!("Content-Length: {length}"));
    }
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

fn respond(
    mut client: std::net::TcpStream,
    status: &str,
    extra_headers: &str,
    content_type: &str,
    body: &[u8],
) {
    use std::io::Write;
    let _ = write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{extra_headers}Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = client.write_all(body);
    let _ = client.flush();
}

/// moto's answer to one request: (head, body).
fn forward(state: &ProxyState, head: &str, body: &[u8]) -> Option<(String, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut upstream = std::net::TcpStream::connect(&state.upstream).ok()?;
    upstream
        .write_all(close_head(head, Some(body.len())).as_bytes())
        .ok()?;
    upstream.write_all(body).ok()?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response).ok()?;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(response.len(), |index| index + 4);
    Some((
        String::from_utf8_lossy(&response[..split]).into_owned(),
        response[split..].to_vec(),
    ))
}

/// Replaces the content of the top-level element `name` with nothing (`<name/>` stays as is).
fn empty_element(document: &mut String, name: &str) {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    if let (Some(start), Some(end)) = (document.find(&open), document.rfind(&close))
        && start < end
    {
        document.replace_range(start + open.len()..end, "");
    }
}

/// One page of moto's whole authorization details answer: only the `index`-th list (0-based)
/// keeps its members, and the paging fields say what follows.
fn authorization_page(whole: &[u8], index: usize, paging: Paging) -> Vec<u8> {
    let mut document = String::from_utf8_lossy(whole).into_owned();
    for (position, name) in DETAIL_LISTS.iter().enumerate() {
        if position != index {
            empty_element(&mut document, name);
        }
    }
    let last = index + 1 == DETAIL_LISTS.len();
    let flag = match paging {
        Paging::NoTruncatedFlag => String::new(),
        Paging::NoMarker => "<IsTruncated>true</IsTruncated>".to_owned(),
        Paging::RepeatMarker => "<IsTruncated>true</IsTruncated><Marker>page-2</Marker>".to_owned(),
        _ if last => "<IsTruncated>false</IsTruncated>".to_owned(),
        _ => format!(
            "<IsTruncated>true</IsTruncated><Marker>page-{}</Marker>",
            index + 2
        ),
    };
    for old in [
        "<IsTruncated>false</IsTruncated>",
        "<IsTruncated>true</IsTruncated>",
    ] {
        document = document.replace(old, "");
    }
    let close = "</GetAccountAuthorizationDetailsResult>";
    if let Some(at) = document.find(close) {
        document.insert_str(at, &flag);
    }
    document.into_bytes()
}

fn proxy_one(state: &ProxyState, client: std::net::TcpStream) {
    let fault = lock(&state.fault).clone();
    let Some((head, body, length)) = peek_request(&client) else {
        return;
    };
    let params = form(&body);
    let operation = parameter(&params, "Action").unwrap_or("?").to_owned();
    lock(&state.requests).push(operation.clone());
    let paging = *lock(&state.paging);
    let is_details = operation == "GetAccountAuthorizationDetails";
    // Page numbers of the proxy's own paging are 1-based and carried in the marker.
    let page = if is_details && paging != Paging::Off {
        parameter(&params, "Marker")
            .and_then(|marker| marker.strip_prefix("page-"))
            .and_then(|number| number.parse::<usize>().ok())
            .unwrap_or(1)
    } else {
        1
    };
    let mutating = MUTATIONS.contains(&operation.as_str());
    let hit = fault.as_ref().and_then(|(fault, target)| {
        let hit = match target {
            Target::Everything => true,
            Target::Operation(name) => *name == operation,
            Target::AuthorizationPage(wanted) => is_details && *wanted == page,
            Target::Reads => !mutating && operation != "GetCallerIdentity",
            Target::ActionReads => ACTION_READS.contains(&operation.as_str()),
        };
        hit.then_some(*fault)
    });
    if hit != Some(Fault::Reset) && consume(&client, length).is_none() {
        return;
    }
    match hit {
        Some(Fault::Hang) => {
            lock(&state.held).push(client);
            return;
        }
        Some(Fault::Reset) => {
            // The request is still unread in the socket: closing it now sends a reset.
            drop(client);
            return;
        }
        Some(Fault::ServerError) => {
            return respond(
                client,
                "503 Service Unavailable",
                "",
                "text/html",
                b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
            );
        }
        Some(Fault::Throttle) => {
            let retry_after = lock(&state.retry_after)
                .map(|seconds| format!("Retry-After: {seconds}\r\n"))
                .unwrap_or_default();
            return respond(
                client,
                "400 Bad Request",
                &retry_after,
                "text/xml",
                b"<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>",
            );
        }
        Some(Fault::Empty) => return respond(client, "200 OK", "", "text/xml", b""),
        Some(Fault::Garbage) => {
            return respond(
                client,
                "200 OK",
                "",
                "text/xml",
                b"\x89PNG\r\n\x1a\n<<this is not the answer>> \xff\xfe",
            );
        }
        Some(Fault::Truncate) | None => {}
    }
    let Some((response_head, mut response_body)) = forward(state, &head, &body) else {
        return;
    };
    if mutating {
        let mut line = operation.clone();
        for name in [
            "UserName",
            "RoleName",
            "GroupName",
            "AccessKeyId",
            "Status",
            "PolicyArn",
            "PolicyName",
        ] {
            if let Some(value) = parameter(&params, name) {
                line.push_str(&format!(" {name}={value}"));
            }
        }
        lock(&state.forwarded).push(line);
    }
    if is_details && paging != Paging::Off && response_head.starts_with("HTTP/1.1 200") {
        let index = (page - 1).min(DETAIL_LISTS.len() - 1);
        response_body = authorization_page(&response_body, index, paging);
    }
    if let Some((_, text, replacement)) = lock(&state.rewrite)
        .as_ref()
        .filter(|(name, _, _)| *name == operation)
    {
        response_body = String::from_utf8_lossy(&response_body)
            .replace(text.as_str(), replacement)
            .into_bytes();
    }
    if hit == Some(Fault::Truncate) {
        response_body.truncate(response_body.len() / 2);
    }
    let mut client = client;
    use std::io::Write;
    let _ = client.write_all(close_head(&response_head, Some(response_body.len())).as_bytes());
    let _ = client.write_all(&response_body);
    let _ = client.flush();
}
