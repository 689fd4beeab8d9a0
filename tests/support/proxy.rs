//! A TCP proxy between a process under test and RabbitMQ that a test can
//! hold and cut: holding one direction keeps its bytes in the proxy (the
//! other still flows), cutting drops every connection open through it, as
//! a network failure would, while new ones are accepted.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// See the module docs.
pub struct Proxy {
    amqp_url: String,
    to_client: watch::Sender<bool>,
    to_server: watch::Sender<bool>,
    /// Cancelled by [`Proxy::cut`]; connections accepted later get a new one.
    generation: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on a free local port and forwards to the broker of
    /// `amqp_url`.
    pub async fn for_amqp(amqp_url: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (scheme, rest) = amqp_url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, upstream) = match authority.rsplit_once('@') {
            Some((credentials, host)) => (format!("{credentials}@"), host.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let upstream = if upstream.contains(':') {
            upstream
        } else {
            format!("{upstream}:5672")
        };
        let (to_client, _) = watch::channel(true);
        let (to_server, _) = watch::channel(true);
        let generation = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let proxy = Proxy {
            amqp_url: format!("{scheme}://{credentials}127.0.0.1:{port}/{path}"),
            to_client,
            to_server,
            generation,
            stop,
        };
        let to_client = proxy.to_client.subscribe();
        let to_server = proxy.to_server.subscribe();
        let generation = proxy.generation.clone();
        let stop = proxy.stop.clone();
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                };
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let cut = generation.lock().expect("proxy generation").clone();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(
                    client_read,
                    server_write,
                    to_server.clone(),
                    cut.clone(),
                ));
                tokio::spawn(pipe(server_read, client_write, to_client.clone(), cut));
            }
        });
        proxy
    }

    /// The AMQP URL that connects through this proxy.
    pub fn amqp_url(&self) -> &str {
        &self.amqp_url
    }

    /// Keeps what the broker sends (confirms, deliveries) in the proxy.
    pub fn hold_answers(&self) {
        self.to_client.send_replace(false);
    }

    /// Keeps what the client sends in the proxy too.
    pub fn hold_all(&self) {
        self.to_client.send_replace(false);
        self.to_server.send_replace(false);
    }

    /// Lets everything flow again.
    pub fn release(&self) {
        self.to_client.send_replace(true);
        self.to_server.send_replace(true);
    }

    /// Drops every connection open through the proxy, held bytes and all.
    pub fn cut(&self) {
        let mut generation = self.generation.lock().expect("proxy generation");
        generation.cancel();
        *generation = CancellationToken::new();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

/// Copies `from` to `to`, waiting while `flowing` is false, until either
/// side closes or `cut` is cancelled.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut flowing: watch::Receiver<bool>,
    cut: CancellationToken,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            _ = cut.cancelled() => return,
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        tokio::select! {
            _ = cut.cancelled() => return,
            open = flowing.wait_for(|flowing| *flowing) => if open.is_err() { return },
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
