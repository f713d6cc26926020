//! The cap holds, and a slot is freed when its connection authenticates or ends.

use super::*;

#[test]
fn cap_refuses_beyond_max_and_frees_on_drop() {
    let startups = Startups::new(2);
    let a = startups.try_take().expect("first slot");
    let b = startups.try_take().expect("second slot");
    assert!(startups.try_take().is_none(), "a third slot beyond the cap");
    assert_eq!(startups.taken(), 2);
    drop(a);
    assert_eq!(startups.taken(), 1);
    let c = startups.try_take().expect("a freed slot is taken again");
    drop((b, c));
    assert_eq!(startups.taken(), 0);
}

#[test]
fn concurrent_takers_never_exceed_the_cap() {
    let startups = Startups::new(8);
    let held = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    if let Some(slot) = startups.try_take() {
                        assert!(startups.taken() <= 8);
                        held.lock().unwrap().push(slot);
                    }
                }
            });
        }
    });
    assert_eq!(held.lock().unwrap().len(), 8);
}
