//! The catalogue is consistent and the README's event table is the one it generates.

use super::events::{self, ALL};

const START: &str = "<!-- audit-events:start (generated from bastion/src/audit/events.rs) -->\n";
const END: &str = "<!-- audit-events:end -->";

#[test]
fn event_names_are_unique_and_fields_are_not_repeated() {
    let mut names: Vec<&str> = ALL.iter().map(|e| e.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ALL.len(), "an event name is defined twice");
    for e in ALL {
        let mut fields = e.fields.to_vec();
        fields.sort_unstable();
        fields.dedup();
        assert_eq!(
            fields.len(),
            e.fields.len(),
            "{}: a field is listed twice",
            e.name
        );
        assert!(
            !e.fields.contains(&"event"),
            "{}: `event` is implicit",
            e.name
        );
        assert!(events::find(e.name) == Some(e));
    }
}

/// Regenerate with `UPDATE_README=1 cargo test -p bastion audit`.
#[test]
fn readme_event_table_matches_the_catalogue() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md next to the workspace");
    let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the markers {START:?} … {END:?} around the audit event table");
    };
    let current = &readme[start + START.len()..end];
    let wanted = events::markdown_table();
    if current != wanted && std::env::var_os("UPDATE_README").is_some() {
        let updated = format!(
            "{}{wanted}{}",
            &readme[..start + START.len()],
            &readme[end..]
        );
        std::fs::write(path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        current, wanted,
        "README.md's audit event table differs from bastion/src/audit/events.rs; \
         regenerate it with UPDATE_README=1 cargo test -p bastion audit"
    );
}
