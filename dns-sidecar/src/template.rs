//! Name templates (`jumpbox.{region}.example.com`, `{task_id}`) and the DNS name rules a
//! rendered record name must meet before it reaches Route 53.
//!
//! A template is checked when the configuration is read (unknown placeholders, unbalanced
//! braces) so a typo fails at start with the setting named, not as a Route 53 error later.

use crate::error::{Error, Result};

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 5] = ["region", "az", "cluster", "task_id", "family"];

/// The set identifier template the documentation recommends: the cluster and the task, so
/// prune and reconcile can tell this cluster's values from another's ('/' cannot occur in an
/// ECS cluster name, so the split is unambiguous).
pub const RECOMMENDED_SET_IDENTIFIER: &str = "{cluster}/{task_id}";

/// Values for the placeholders, from the task metadata and the region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub region: Option<String>,
    pub az: Option<String>,
    pub cluster: Option<String>,
    pub task_id: Option<String>,
    pub family: Option<String>,
}

impl Vars {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "region" => self.region.as_deref(),
            "az" => self.az.as_deref(),
            "cluster" => self.cluster.as_deref(),
            "task_id" => self.task_id.as_deref(),
            "family" => self.family.as_deref(),
            _ => None,
        }
    }
}

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    setting: &'static str,
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(&'static str),
}

impl Template {
    /// Parse `source`; `setting` names the variable in error messages.
    pub fn parse(setting: &'static str, source: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(Error::config(format!(
                    "{setting}: \"{source}\" has a '}}' without its '{{'"
                )));
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                Error::config(format!(
                    "{setting}: \"{source}\" has a '{{' without its '}}'"
                ))
            })?;
            let name = &after[..close];
            let var = PLACEHOLDERS.iter().find(|p| **p == name).ok_or_else(|| {
                Error::config(format!(
                    "{setting}: unknown placeholder {{{name}}} in \"{source}\"; use {}",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ))
            })?;
            parts.push(Part::Var(var));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.is_empty() {
            return Err(Error::config(format!("{setting}: must not be empty")));
        }
        Ok(Template {
            setting,
            source: source.to_string(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The placeholders this template uses.
    pub fn uses(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(*v),
            Part::Text(_) => None,
        })
    }

    /// Whether rendering needs the ECS task metadata (anything but `{region}`).
    pub fn needs_metadata(&self) -> bool {
        self.uses().any(|v| v != "region")
    }

    pub fn render(&self, vars: &Vars) -> Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => match vars.get(v) {
                    Some(value) => out.push_str(value),
                    None => {
                        return Err(Error::config(format!(
                            "{}: {{{v}}} in \"{}\" has no value here (it comes from the ECS \
                             task metadata; outside ECS set ECS_CONTAINER_METADATA_URI_V4, \
                             or AWS_REGION for {{region}})",
                            self.setting, self.source
                        )))
                    }
                },
            }
        }
        Ok(out)
    }

    /// For prune and reconcile: the text before and after `{task_id}` in THIS cluster's set
    /// identifiers, when the template is `prefix{task_id}suffix`, names the cluster, and has
    /// nothing task-specific besides the task id. Rendering the prefix and suffix needs the
    /// task-independent placeholders only; `{cluster}` in them is what keeps another cluster's
    /// values (whose tasks this cluster's ListTasks cannot see) out of reach.
    pub fn around_task_id(&self, vars: &Vars) -> Result<(String, String)> {
        let pos = self
            .parts
            .iter()
            .position(|p| *p == Part::Var("task_id"))
            .ok_or_else(|| {
                Error::config(format!(
                    "{}: \"{}\" has no {{task_id}}; prune and reconcile can only tell which \
                     task owns a record when the set identifier contains {{task_id}} (use \
                     {RECOMMENDED_SET_IDENTIFIER})",
                    self.setting, self.source
                ))
            })?;
        if !self.uses().any(|v| v == "cluster") {
            return Err(Error::config(format!(
                "{}: \"{}\" has no {{cluster}}; prune and reconcile judge only this cluster's \
                 values, and without the cluster in the set identifier another cluster's live \
                 values would look stale (use {RECOMMENDED_SET_IDENTIFIER})",
                self.setting, self.source
            )));
        }
        let render = |parts: &[Part]| -> Result<String> {
            let mut out = String::new();
            for part in parts {
                match part {
                    Part::Text(t) => out.push_str(t),
                    Part::Var(v @ ("region" | "cluster" | "family")) => {
                        out.push_str(vars.get(v).ok_or_else(|| {
                            Error::config(format!("{}: {{{v}}} has no value", self.setting))
                        })?)
                    }
                    Part::Var(v) => {
                        return Err(Error::config(format!(
                            "{}: prune needs {{task_id}} to be the only task-specific \
                             placeholder, but \"{}\" also uses {{{v}}}",
                            self.setting, self.source
                        )))
                    }
                }
            }
            Ok(out)
        };
        Ok((render(&self.parts[..pos])?, render(&self.parts[pos + 1..])?))
    }
}

/// Normalise and check a rendered record name: lower case, no trailing dot, labels of letters,
/// digits, `-` and `_` (1–63 octets), at most 253 octets in all, at least two labels.
pub fn check_record_name(setting: &str, name: &str) -> Result<String> {
    let lowered = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let fail = |why: String| {
        Err(Error::config(format!(
            "{setting}: \"{name}\" is not a valid DNS name: {why}"
        )))
    };
    if lowered.is_empty() {
        return fail("it is empty".into());
    }
    if lowered.len() > 253 {
        return fail(format!("{} octets, the limit is 253", lowered.len()));
    }
    let labels: Vec<&str> = lowered.split('.').collect();
    if labels.len() < 2 {
        return fail("it needs at least one dot (a name inside the hosted zone)".into());
    }
    for label in &labels {
        if label.is_empty() {
            return fail("it has an empty label (two dots in a row)".into());
        }
        if label.len() > 63 {
            return fail(format!("the label \"{label}\" is longer than 63 octets"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return fail(format!(
                "'{c}' in \"{label}\"; use letters, digits, '-' and '_'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return fail(format!("the label \"{label}\" starts or ends with '-'"));
        }
    }
    Ok(lowered)
}

/// Check a rendered set identifier (Route 53: 1–128 characters).
pub fn check_set_identifier(setting: &str, id: &str) -> Result<String> {
    if id.is_empty() || id.len() > 128 {
        return Err(Error::config(format!(
            "{setting}: the set identifier \"{id}\" must be 1 to 128 characters"
        )));
    }
    if id.chars().any(|c| c.is_control()) {
        return Err(Error::config(format!(
            "{setting}: the set identifier must not contain control characters"
        )));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            region: Some("eu-west-1".into()),
            az: Some("eu-west-1a".into()),
            cluster: Some("prod".into()),
            task_id: Some("bfa2636268144d039771334145e490c5".into()),
            family: Some("jumpbox".into()),
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let t = Template::parse(
            "DNS_RECORD_NAME",
            "{family}.{task_id}.{az}.{cluster}.{region}.example.com",
        )
        .unwrap();
        assert_eq!(
            t.render(&vars()).unwrap(),
            "jumpbox.bfa2636268144d039771334145e490c5.eu-west-1a.prod.eu-west-1.example.com"
        );
        assert!(t.needs_metadata());
        let r = Template::parse("DNS_RECORD_NAME", "jumpbox.{region}.example.com").unwrap();
        assert!(!r.needs_metadata());
    }

    #[test]
    fn unknown_placeholder_and_unbalanced_braces_name_the_setting() {
        let e = Template::parse("DNS_RECORD_NAME", "jumpbox.{regoin}.example.com").unwrap_err();
        assert!(
            e.message
                .starts_with("DNS_RECORD_NAME: unknown placeholder {regoin}"),
            "{e}"
        );
        assert!(e.message.contains("{region}"), "{e}");
        for bad in [
            "jumpbox.{region.example.com",
            "jumpbox.region}.example.com",
            "",
        ] {
            let e = Template::parse("DNS_SET_IDENTIFIER", bad).unwrap_err();
            assert!(e.message.starts_with("DNS_SET_IDENTIFIER:"), "{e}");
        }
    }

    #[test]
    fn missing_value_is_a_config_error() {
        let t = Template::parse("DNS_RECORD_NAME", "{cluster}.example.com").unwrap();
        let e = t.render(&Vars::default()).unwrap_err();
        assert!(e.message.contains("{cluster}"), "{e}");
        assert!(e.message.contains("ECS_CONTAINER_METADATA_URI_V4"), "{e}");
    }

    #[test]
    fn record_names_are_checked_and_normalised() {
        assert_eq!(
            check_record_name("N", "JumpBox.EU-West-1.Example.com.").unwrap(),
            "jumpbox.eu-west-1.example.com"
        );
        for bad in ["localhost", "a..b", "-a.b", "a b.c", "é.example.com", ""] {
            assert!(check_record_name("N", bad).is_err(), "{bad}");
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(check_record_name("N", &long_label).is_err());
        let long_name = format!("{}example.com", "abcdefghi.".repeat(25));
        assert!(check_record_name("N", &long_name)
            .unwrap_err()
            .message
            .contains("253"));
    }

    #[test]
    fn around_task_id_for_prune() {
        let t = Template::parse("DNS_SET_IDENTIFIER", "{cluster}-{task_id}").unwrap();
        assert_eq!(
            t.around_task_id(&vars()).unwrap(),
            ("prod-".to_string(), String::new())
        );
        let t = Template::parse("DNS_SET_IDENTIFIER", RECOMMENDED_SET_IDENTIFIER).unwrap();
        assert_eq!(
            t.around_task_id(&vars()).unwrap(),
            ("prod/".to_string(), String::new())
        );
        let t = Template::parse("DNS_SET_IDENTIFIER", "{region}:{task_id}@{cluster}").unwrap();
        assert_eq!(
            t.around_task_id(&vars()).unwrap(),
            ("eu-west-1:".to_string(), "@prod".to_string())
        );
        let no_id = Template::parse("DNS_SET_IDENTIFIER", "{cluster}").unwrap();
        assert!(no_id.around_task_id(&vars()).is_err());
        let no_cluster = Template::parse("DNS_SET_IDENTIFIER", "{task_id}").unwrap();
        let e = no_cluster.around_task_id(&vars()).unwrap_err();
        assert!(e.message.contains("{cluster}/{task_id}"), "{e}");
        let az = Template::parse("DNS_SET_IDENTIFIER", "{az}-{cluster}-{task_id}").unwrap();
        assert!(az
            .around_task_id(&vars())
            .unwrap_err()
            .message
            .contains("{az}"));
    }
}
