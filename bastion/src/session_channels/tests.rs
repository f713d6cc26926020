//! Which input leaves a held shell (the texts users read are `reachable`'s).

use super::*;

#[test]
fn ctrl_c_and_ctrl_d_leave_anything_else_does_not() {
    assert!(is_leave_key(b"\x03"));
    assert!(is_leave_key(b"abc\x04"));
    assert!(!is_leave_key(b"exit\r"));
    assert!(!is_leave_key(b""));
}
