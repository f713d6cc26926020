//! Waiting for key files: one that appears in time ends the wait, one that never does is an
//! error naming the setting to raise, and no limit means no wait.

use std::path::Path;

use super::*;

fn keys_file(path: &Path) -> KeyFile {
    KeyFile {
        setting: "BASTION_AUTHORIZED_KEYS_FILE",
        path: path.to_path_buf(),
    }
}

#[tokio::test]
async fn a_file_that_appears_ends_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authorized_keys");
    let writer = {
        let path = path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, "ssh-ed25519 AAAA x\n").unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        })
    };
    let started = Instant::now();
    let waited = wait_for(&[keys_file(&path)], Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert_eq!(waited, Ok(()));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "the wait took {took:?} for a file written after 300 ms"
    );
    writer.await.unwrap();
}

#[tokio::test]
async fn a_file_that_never_appears_is_an_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let present = dir.path().join("revoked");
    std::fs::write(&present, "").unwrap();
    let absent = dir.path().join("authorized_keys");
    let files = [
        KeyFile {
            setting: "BASTION_REVOKED_KEYS_FILE",
            path: present,
        },
        keys_file(&absent),
    ];
    let started = Instant::now();
    let err = wait_for(&files, Duration::from_millis(500))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(2),
        "gave up after {took:?} with a 500 ms limit"
    );
    assert_eq!(err.file, keys_file(&absent));
    let text = err.to_string();
    for needle in [
        "waited 500ms",
        "BASTION_WAIT_FOR_KEYS",
        "BASTION_AUTHORIZED_KEYS_FILE",
        absent.to_str().unwrap(),
    ] {
        assert!(
            text.contains(needle),
            "{text:?} does not mention {needle:?}"
        );
    }
}

#[tokio::test]
async fn no_limit_means_no_wait() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("authorized_keys");
    let started = Instant::now();
    assert_eq!(
        wait_for(&[keys_file(&absent)], Duration::ZERO).await,
        Ok(())
    );
    assert!(started.elapsed() < POLL);
}
