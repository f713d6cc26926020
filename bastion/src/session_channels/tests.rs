//! Which input leaves a held shell, and the texts users read.

use super::*;

#[test]
fn ctrl_c_and_ctrl_d_leave_anything_else_does_not() {
    assert!(is_leave_key(b"\x03"));
    assert!(is_leave_key(b"abc\x04"));
    assert!(!is_leave_key(b"exit\r"));
    assert!(!is_leave_key(b""));
}

#[test]
fn texts_tell_the_user_what_to_do() {
    assert!(NOTICE.contains("-N"), "the notice names -N");
    assert!(
        NO_COMMANDS.contains("ssh -N -L"),
        "the refusal shows the tunnel command"
    );
}
