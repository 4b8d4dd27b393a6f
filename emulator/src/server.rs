//! Serving over TCP: `serve` binds (port 0 allowed) and returns the bound address and a shutdown
//! handle; `spawn` is the test helper. Connections go through a listener whose streams carry a kill
//! switch, so the "dropped connection" and "timeout after write" faults can close a connection
//! without writing a single byte of response.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::EmulatorConfig;
use crate::error::EmulatorError;
use crate::state::EmulatorState;

/// The kill switch of one connection, available to handlers as `ConnectInfo<ConnKill>`.
#[derive(Debug, Clone, Default)]
pub struct ConnKill(Arc<AtomicBool>);

impl ConnKill {
    /// From now on every read and write of the connection fails, so the server closes it.
    pub fn kill(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn killed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A TCP stream that fails all I/O once its kill switch is set.
pub struct KillableStream {
    inner: TcpStream,
    switch: ConnKill,
}

fn killed_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection dropped by fault injection")
}

impl AsyncRead for KillableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.switch.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.switch.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.switch.killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TCP listener handing out [`KillableStream`]s.
pub struct KillableListener {
    inner: TcpListener,
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (KillableStream { inner: stream, switch: ConnKill::default() }, addr);
                }
                // Transient accept errors (EMFILE…): back off briefly, like axum's own listener.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.io().switch.clone()
    }
}

/// A running server: its address, its state, and a way to stop it.
#[derive(Debug)]
pub struct EmulatorHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// The shared state (observation and control).
    pub state: EmulatorState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the server task (open connections are closed
    /// by the runtime when their tasks end).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until the server stops (for the CLI: runs until shutdown or a fatal error).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `addr` (port 0 = any free port) and serves a fresh emulator built from `config`.
pub async fn serve(config: EmulatorConfig, addr: SocketAddr) -> Result<EmulatorHandle, EmulatorError> {
    serve_state(EmulatorState::new(config), addr).await
}

/// Binds `addr` and serves an existing state.
pub async fn serve_state(state: EmulatorState, addr: SocketAddr) -> Result<EmulatorHandle, EmulatorError> {
    let listener =
        TcpListener::bind(addr).await.map_err(|source| EmulatorError::Bind { addr: addr.to_string(), source })?;
    let bound = listener.local_addr().map_err(|source| EmulatorError::Bind { addr: addr.to_string(), source })?;
    let app = crate::app(state.clone()).into_make_service_with_connect_info::<ConnKill>();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(KillableListener { inner: listener }, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "emulator server stopped");
        }
    });
    Ok(EmulatorHandle { addr: bound, state, shutdown: Some(tx), task: Some(task) })
}

/// An emulator serving on a free loopback port, for tests. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningEmulator {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The shared state.
    pub state: EmulatorState,
    /// The server handle.
    pub handle: EmulatorHandle,
}

impl RunningEmulator {
    /// URL of a path (`/v1/ws/1/Assets`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

/// Starts an emulator on `127.0.0.1:0`.
pub async fn spawn(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    let handle = serve(config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    Ok(RunningEmulator { base_url: handle.base_url(), state: handle.state.clone(), handle })
}
