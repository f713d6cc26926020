//! The live key set keeps the last good version and tells subscribers about new ones.

use super::*;
use crate::reload::{Reloadable, Watcher};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICIjdiUtJdomjTqyaNtCcLVJrVxramimyS26/xj01HsR";

fn file_store(dir: &tempfile::TempDir, content: &str) -> (std::path::PathBuf, Arc<KeyStore>) {
    let path = dir.path().join("authorized_keys");
    std::fs::write(&path, content).unwrap();
    let store = KeyStore::load(KeySources {
        keys_file: Some(path.clone()),
        ..KeySources::default()
    })
    .unwrap();
    (path, store)
}

#[tokio::test]
async fn store_reload_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store) = file_store(&dir, &format!("{KEY} a\n"));
    assert!(store.has_files());
    assert!(!store.reload_keys().unwrap(), "unchanged");
    std::fs::write(&path, "ssh-ed25519 broken!!\n").unwrap();
    assert!(store.reload_keys().is_err());
    assert_eq!(
        store.current().keys.len(),
        1,
        "a broken file keeps the last good set"
    );
    std::fs::write(&path, format!("# emptied\n{KEY} a\n{KEY} b\n")).unwrap();
    assert!(store.reload_keys().unwrap());
    assert_eq!(store.current().keys.len(), 2);
}

#[tokio::test]
async fn subscribers_see_each_new_set_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store) = file_store(&dir, &format!("{KEY} a\n"));
    let mut changes = store.subscribe();
    let _watcher = Watcher::spawn(
        vec![store.clone() as Arc<dyn Reloadable>],
        std::time::Duration::from_millis(20),
    );
    std::fs::write(&path, format!("{KEY} a\n{KEY} b\n")).unwrap();
    let changed = tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed()).await;
    assert!(matches!(changed, Ok(Ok(()))), "no new set within 5 s");
    assert_eq!(changes.borrow_and_update().keys.len(), 2);
    // A broken edit is never published.
    std::fs::write(&path, "ssh-ed25519 broken!!\n").unwrap();
    let quiet =
        tokio::time::timeout(std::time::Duration::from_millis(300), changes.changed()).await;
    assert!(quiet.is_err(), "a broken file was published");
    assert_eq!(store.current().keys.len(), 2);
}

#[test]
fn environment_content_is_not_watched() {
    let store = KeyStore::load(KeySources {
        keys: Some(format!("{KEY} a\n")),
        ..KeySources::default()
    })
    .unwrap();
    assert!(!store.has_files());
}
