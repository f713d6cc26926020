//! In-process test kit (tests only): a real server started with `server::serve` on a loopback
//! port, a real russh client, keys, and loopback echo servers. The server, session and tunnel
//! tests drive the whole stack through it without a subprocess.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{client, ChannelOpenFailure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Cli;

/// Everything in the tests is bounded by this.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// RSA public keys made by `ssh-keygen -t rsa -b N` (1024 is below the default
/// `BASTION_MIN_RSA_BITS`, 2047 just below it).
pub const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCr91gfmMRxH3A5bRfrsKizZh7khvwrFDW1jpriW9INJkt+qilNFFMCm++h0FuerH/uHFN5+2LcMRU3i2Ja5QEKq/5naVVDUGTQvqCodhvVMxMS1stwSoBRoRcnz6y1mcq/G/MIMkV+Q2wzcRxaqW2ZjER6Wa9g/OoB72wAMN820Q==";
pub const RSA_2047: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAFa+vekQBHODpTYhs+Uiq1yYnYGj9rlpP01biyJAvO94ByMtcUK7AGLVeoJ4tb5VOJyLgcwb++xNS/q+XlUq5dDAegBTD0+vCctCuMgdzAGzfUw87ZJs2EAwzA7zwE+39qAZEgMFbUrb+GMcBsKSKZKCekc4m2b9o1166jEOMNn6aoxzp1/sQfAIcIR6hArAoelQB74md4qOuzGh8iv89715VPNu6aVO4rBJNgq59GMaBWI+YLNmKwIJoDjsxAW1sOvvyFiEqOG3sqQ0W126wCZc0k87VCBI6vw98HWJQJEryr+A4dpzMT6tO9KDMqo/lpUpb61pZoa5ZUGDE4Xwdxs=";
pub const RSA_2048: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0ZoTsUSmNc54kpSuPzBPSJnQtFs9iVNmUn85QTbqNvsTI6p/KX59uoycv01Pc7tUDlOVh02ZNS0sKvM974Izo3J1GtC8f1mBQsFVGIfd3Ma9rENprc8SQvQ61XZRmmdvQ8O5Gy1743/VKznC+DrOJWhaegwfjRzR8xT6cEYL/vv9Ry7t4GiZaohxgSdtaB6K4gzv2zoFgSwskgVB/OIeiyUPhTTpS4PzdDRbQJk6FlQkN5to4vyZBUvTgVgL4tB7ld8SUFTuJ7NkUa0omcPItEsy1OathzvzClgxcoTWB3MbOrRMHWNu9bpmXllTD8TOVzrFk9euUET5ZQ/L6lT43";

/// Security key public keys (`sk-…`, application `ssh:`), made without hardware.
pub const SK_ED25519: &str = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAINBKsjJ0K7SrOhNovUYV5ObQIkq3GgFrr4UgozLJd4c3AAAABHNzaDo=";
pub const SK_ECDSA: &str = "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBD7Xoo7GSO3OXVt+JS9rKq+7RINRFKJLPKqPcQ9kmTvCVxGjTNySKQgLY58Jl3/rfKkezOFkm/6orYXHKyBq3n4AAAAEc3NoOg==";

pub fn new_key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("generate a test key")
}

pub fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().expect("encode a public key")
}

/// A server running in this process; dropping it stops it.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), String>>,
}

impl TestServer {
    /// Start a server configured by command-line style arguments (a host key is added).
    pub async fn start(args: &[&str]) -> TestServer {
        let host_key = new_key()
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .expect("encode the host key")
            .to_string();
        let host_key = format!("--host-key={host_key}");
        let mut argv = vec!["bastion", "--listen", "127.0.0.1:0", &host_key];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("test arguments parse");
        let settings = cli
            .options
            .into_settings()
            .expect("test settings are valid");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
            "test"
        };
        let task = tokio::spawn(crate::server::serve(listener, settings, shutdown));
        TestServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// A server where `key` logs in and may open tunnels to `destination` only.
    pub async fn permitting(key: &PrivateKey, destination: SocketAddr) -> TestServer {
        let line = public_line(key);
        let rule = destination.to_string();
        TestServer::start(&["--authorized-keys", &line, "--permit-open", &rule]).await
    }

    /// Resolve the shutdown future, as SIGTERM does.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client that accepts any host key (the tests do not test host keys).
pub struct TrustingClient;

impl client::Handler for TrustingClient {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Connect and log in with `key`; `Ok(false)` when the key is refused.
pub async fn login(
    addr: SocketAddr,
    key: &PrivateKey,
) -> Result<(client::Handle<TrustingClient>, bool), russh::Error> {
    let config = Arc::new(client::Config::default());
    let mut handle = tokio::time::timeout(DEADLINE, client::connect(config, addr, TrustingClient))
        .await
        .map_err(|_| russh::Error::ConnectionTimeout)??;
    let key = PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None);
    let result = handle.authenticate_publickey("tester", key).await?;
    Ok((handle, result.success()))
}

/// Open a tunnel; `Err(failure)` when the bastion refuses it.
pub async fn open_tunnel(
    handle: &client::Handle<TrustingClient>,
    host: &str,
    port: u16,
) -> Result<russh::ChannelStream<client::Msg>, ChannelOpenFailure> {
    let opened = tokio::time::timeout(
        DEADLINE,
        handle.channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 40000),
    )
    .await
    .expect("the bastion answers the open request in time");
    match opened {
        Ok(channel) => Ok(channel.into_stream()),
        Err(russh::Error::ChannelOpenFailure(f)) => Err(f),
        Err(e) => panic!("unexpected error opening a tunnel: {e}"),
    }
}

/// A loopback echo server; its task ends with the test's runtime.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
                let _ = wr.shutdown().await;
            });
        }
    });
    addr
}

/// Send `payload` through a stream and read the same bytes back.
pub async fn echo_through<S>(stream: &mut S, payload: &[u8]) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(payload)
        .await
        .expect("write to the tunnel");
    let mut back = vec![0u8; payload.len()];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut back))
        .await
        .expect("echo within the deadline")
        .expect("read from the tunnel");
    back
}

/// The text a refusal carries.
pub fn failure_text(f: &ChannelOpenFailure) -> String {
    match f {
        ChannelOpenFailure::Other { code, reason } => format!("{code}: {reason}"),
        other => format!("{other:?}"),
    }
}

/// A server permitting one echo destination, and a client logged in to it.
pub struct EchoSetup {
    /// Kept so the server runs as long as the setup.
    _server: TestServer,
    pub handle: client::Handle<TrustingClient>,
    pub echo: SocketAddr,
}

impl EchoSetup {
    pub async fn start() -> EchoSetup {
        let key = new_key();
        let echo = echo_server().await;
        let server = TestServer::permitting(&key, echo).await;
        let (handle, ok) = login(server.addr, &key)
            .await
            .expect("connect to the test server");
        assert!(ok, "the test key logs in");
        EchoSetup {
            _server: server,
            handle,
            echo,
        }
    }

    /// A new tunnel to the echo server.
    pub async fn tunnel(&self) -> russh::ChannelStream<client::Msg> {
        open_tunnel(&self.handle, "127.0.0.1", self.echo.port())
            .await
            .expect("a permitted tunnel opens")
    }
}
