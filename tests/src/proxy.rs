//! A TCP proxy the tests control, to take a server "away" (cut every connection and
//! refuse new ones) and bring it back, without touching the real server other tests use.
//! As an AMQP proxy it can also play a RabbitMQ 4.3 that refuses transient non-exclusive
//! queues ([`Proxy::start_refusing_transient_queues`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

/// What the proxy does to the traffic it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Bytes as they are.
    Plain,
    /// AMQP, except that a `queue.declare` of a transient non-exclusive queue is answered
    /// with a 541 connection close, as RabbitMQ 4.3 does by default.
    RefuseTransientQueues,
    /// AMQP, except that the first connection to declare anything (an exchange or a
    /// queue) is dropped at that declaration: a broker blip during a worker's first
    /// declarations. Later connections pass as they are.
    DropFirstDeclaration,
}

/// A running proxy to `upstream`.
pub struct Proxy {
    addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    frozen: watch::Sender<bool>,
    links: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
    refused_declarations: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::start_with(upstream, Mode::Plain).await
    }

    /// Forwards AMQP to `upstream` like a RabbitMQ 4.3 with the deprecated feature
    /// `transient_nonexcl_queues` denied: declaring a queue `durable=false, exclusive=false`
    /// closes the connection with 541 (INTERNAL_ERROR) instead of reaching the broker.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start_refusing_transient_queues(upstream: SocketAddr) -> Self {
        Self::start_with(upstream, Mode::RefuseTransientQueues).await
    }

    /// Forwards AMQP to `upstream`, dropping the first connection that declares an
    /// exchange or a queue at that declaration (once per proxy; see
    /// [`Proxy::refused_declarations`]).
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start_dropping_first_declaration(upstream: SocketAddr) -> Self {
        Self::start_with(upstream, Mode::DropFirstDeclaration).await
    }

    /// How many connections the proxy accepted and forwarded (its clients' connects).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// How many declarations the proxy refused (or dropped the connection at).
    pub fn refused_declarations(&self) -> usize {
        self.refused_declarations.load(Ordering::SeqCst)
    }

    async fn start_with(upstream: SocketAddr, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let refusing = Arc::new(AtomicBool::new(false));
        let links = Arc::new(Mutex::new(JoinSet::new()));
        let refused_declarations = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (frozen, _) = watch::channel(false);
        let accept = tokio::spawn({
            let accepted = accepted.clone();
            let refusing = refusing.clone();
            let links = links.clone();
            let refused = refused_declarations.clone();
            let frozen = frozen.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let refused = refused.clone();
                    let frozen = frozen.subscribe();
                    links.lock().await.spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            match mode {
                                Mode::Plain => {
                                    let (cr, cw) = client.into_split();
                                    let (sr, sw) = server.into_split();
                                    tokio::join!(
                                        pump(cr, sw, frozen.clone()),
                                        pump(sr, cw, frozen)
                                    );
                                }
                                Mode::RefuseTransientQueues => {
                                    refuse_transient_queues(client, server, &refused).await;
                                }
                                Mode::DropFirstDeclaration => {
                                    drop_first_declaration(client, server, &refused).await;
                                }
                            }
                        }
                    });
                }
            }
        });
        Self {
            addr,
            refusing,
            frozen,
            links,
            accept,
            refused_declarations,
            accepted,
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Drops every open connection and refuses new ones.
    pub async fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.links.lock().await.abort_all();
    }

    /// Stops forwarding bytes on every connection while keeping the sockets open: a peer
    /// that went silent (a half-open connection, a host that drops packets).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding bytes back while frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// AMQP frame type of a method frame, and the frame-end octet.
const METHOD_FRAME: u8 = 1;
const FRAME_END: u8 = 0xCE;

/// Forwards one AMQP connection, frame by frame from the client, answering a transient
/// non-exclusive `queue.declare` with a 541 connection close.
async fn refuse_transient_queues(client: TcpStream, server: TcpStream, refused: &AtomicUsize) {
    let (mut from_client, to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let to_client = Arc::new(Mutex::new(to_client));
    let downstream = tokio::spawn({
        let to_client = to_client.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = from_server.read(&mut buf).await {
                if n == 0 || to_client.lock().await.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    });
    // The protocol header ("AMQP" 0 0 9 1) comes before the first frame.
    let mut header = [0u8; 8];
    if from_client.read_exact(&mut header).await.is_ok()
        && to_server.write_all(&header).await.is_ok()
    {
        while let Some(frame) = read_frame(&mut from_client).await {
            if frame[0] == METHOD_FRAME && is_transient_shared_declare(&frame[7..frame.len() - 1]) {
                refused.fetch_add(1, Ordering::SeqCst);
                downstream.abort();
                close_with_541(&to_client, &mut from_client).await;
                break;
            }
            if to_server.write_all(&frame).await.is_err() {
                break;
            }
        }
    }
    downstream.abort();
}

/// Forwards one AMQP connection frame by frame from the client and drops it (both sides,
/// without a close) at its first `exchange.declare` or `queue.declare`, when no connection
/// was dropped yet (`dropped` is 0).
async fn drop_first_declaration(client: TcpStream, server: TcpStream, dropped: &AtomicUsize) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let downstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    });
    let mut header = [0u8; 8];
    if from_client.read_exact(&mut header).await.is_ok()
        && to_server.write_all(&header).await.is_ok()
    {
        while let Some(frame) = read_frame(&mut from_client).await {
            let method = frame.get(7..11);
            let declares = frame[0] == METHOD_FRAME && matches!(method, Some([0, 40 | 50, 0, 10]));
            if declares
                && dropped
                    .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                break;
            }
            if to_server.write_all(&frame).await.is_err() {
                break;
            }
        }
    }
    downstream.abort();
}

/// One whole frame (header, payload, frame end), or `None` at the end of the stream.
async fn read_frame(from: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Vec<u8>> {
    let mut frame = vec![0u8; 7];
    from.read_exact(&mut frame).await.ok()?;
    let size = u32::from_be_bytes([frame[3], frame[4], frame[5], frame[6]]) as usize;
    frame.resize(7 + size + 1, 0);
    from.read_exact(&mut frame[7..]).await.ok()?;
    Some(frame)
}

/// Whether a method payload is `queue.declare` (class 50, method 10) of a named queue that
/// is neither passive, durable nor exclusive.
fn is_transient_shared_declare(payload: &[u8]) -> bool {
    if payload.len() < 7 || payload[0..4] != [0, 50, 0, 10] {
        return false;
    }
    // reserved-1 (short), queue (shortstr), then the flag bits.
    let name_len = payload[6] as usize;
    let Some(&bits) = payload.get(7 + name_len) else {
        return false;
    };
    let (passive, durable, exclusive) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
    name_len > 0 && !passive && !durable && !exclusive
}

/// Sends `connection.close` (541, as RabbitMQ 4.3 words it) and waits, briefly, for the
/// client's `close-ok` before the link is dropped.
async fn close_with_541(
    to_client: &Mutex<OwnedWriteHalf>,
    from_client: &mut tokio::net::tcp::OwnedReadHalf,
) {
    let text: &[u8] =
        b"INTERNAL_ERROR - feature 'transient_nonexcl_queues' is deprecated and denied";
    let mut payload = vec![0, 10, 0, 50]; // connection.close
    payload.extend_from_slice(&541u16.to_be_bytes());
    payload.push(u8::try_from(text.len()).expect("short text"));
    payload.extend_from_slice(text);
    payload.extend_from_slice(&[0, 50, 0, 10]); // the failing method: queue.declare
    let mut frame = vec![METHOD_FRAME, 0, 0];
    frame.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(FRAME_END);
    if to_client.lock().await.write_all(&frame).await.is_err() {
        return;
    }
    let close_ok = async {
        while let Some(f) = read_frame(from_client).await {
            if f[0] == METHOD_FRAME && f.get(7..11) == Some(&[0, 10, 0, 51]) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), close_ok).await;
}
