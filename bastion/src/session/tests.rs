//! The session adapter in process, with a real russh client: held `session` channels show the
//! notice and run nothing; commands and sftp are refused with a reason and exit status 1;
//! remote forwarding is refused; a session channel never disturbs a tunnel.

use russh::client::Msg;
use russh::{Channel, ChannelMsg};

use crate::destination_policy::DestinationPolicy;
use crate::key_options::KeyRestrictions;
use crate::reachable::Reach;
use crate::testkit::*;

/// What a session channel received until it closed.
#[derive(Debug, Default)]
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_status: Option<u32>,
    success: bool,
}

async fn collect(channel: &mut Channel<Msg>, until_stdout: Option<&[u8]>) -> Outcome {
    let mut out = Outcome::default();
    let wait = async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.exit_status = Some(exit_status),
                ChannelMsg::Success => out.success = true,
                ChannelMsg::Close => break,
                _ => {}
            }
            if let Some(wanted) = until_stdout {
                if out.stdout.windows(wanted.len()).any(|w| w == wanted) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("the session channel answers in time");
    out
}

/// What a key without options sees on a server with the default rules.
fn default_reach() -> Reach {
    let policy = DestinationPolicy::parse("").unwrap();
    Reach::of(&policy, &KeyRestrictions::default())
}

async fn logged_in_server() -> (TestServer, russh::client::Handle<TrustingClient>) {
    let key = new_key();
    let server = TestServer::start(&["--authorized-keys", &public_line(&key)]).await;
    let (handle, ok) = login(server.addr, &key).await.unwrap();
    assert!(ok);
    (server, handle)
}

#[tokio::test]
async fn commands_are_refused_with_a_reason_and_status_1() {
    let (_server, handle) = logged_in_server().await;
    let mut channel = handle.channel_open_session().await.unwrap();
    channel.exec(true, "cat /etc/passwd").await.unwrap();
    let out = collect(&mut channel, None).await;
    assert_eq!(out.exit_status, Some(1));
    assert_eq!(out.stderr, default_reach().no_commands().as_bytes());
    assert!(out.stdout.is_empty(), "a command produced output");

    let mut sftp = handle.channel_open_session().await.unwrap();
    sftp.request_subsystem(true, "sftp").await.unwrap();
    let out = collect(&mut sftp, None).await;
    assert_eq!(out.exit_status, Some(1));
}

#[tokio::test]
async fn a_shell_shows_the_notice_and_ctrl_c_leaves() {
    let (_server, handle) = logged_in_server().await;
    let mut channel = handle.channel_open_session().await.unwrap();
    channel.request_shell(true).await.unwrap();
    let out = collect(&mut channel, Some(b"add -N")).await;
    assert!(out.success, "the shell request was not acknowledged");
    assert_eq!(out.stdout, default_reach().shell_notice().as_bytes());
    channel.data(&b"ls -la\r"[..]).await.unwrap();
    channel.data(&b"\x03"[..]).await.unwrap();
    let out = collect(&mut channel, None).await;
    assert_eq!(out.exit_status, Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Bye."));
}

#[tokio::test]
async fn remote_forwarding_is_refused_and_tunnels_keep_working() {
    let setup = EchoSetup::start().await;
    let handle = &setup.handle;
    let mut tunnel = setup.tunnel().await;
    assert!(
        handle.tcpip_forward("127.0.0.1", 0).await.is_err(),
        "-R was accepted"
    );
    let session = handle.channel_open_session().await.unwrap();
    session.set_env(true, "SECRET", "value").await.unwrap();
    session.agent_forward(true).await.unwrap();
    assert_eq!(
        echo_through(&mut tunnel, b"unaffected").await,
        b"unaffected"
    );
}
