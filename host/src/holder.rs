//! Lock holders: who takes or holds a lock ([`Holder`], one type for what is written and what
//! is read back, with one `Display`), and their identities, `WHO#RUN`: a person or a pipeline
//! and which run of theirs. Shared by the lifecycle, the Lease adapter and the CLI, so they read
//! and write one form. Pure.

/// Who takes or holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The identity, `WHO#RUN` (the Lease's `holderIdentity`): unique per deployer process.
    pub who: String,
    /// Why, shown to whoever finds the lock held.
    pub reason: Option<String>,
    /// The pipeline that holds it.
    pub pipeline_url: Option<String>,
    /// Since when (RFC 3339), as read back; the Lease sets it when the lock is taken.
    pub since: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&holder_text(&self.who))?;
        if let Some(since) = &self.since {
            write!(f, " since {since}")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        if let Some(url) = &self.pipeline_url {
            write!(f, " {url}")?;
        }
        Ok(())
    }
}

/// The two parts of a holder identity `WHO#RUN`, the run when the identity names one (an
/// identity given with `--holder` may be a bare name).
pub fn holder_parts(id: &str) -> (&str, Option<&str>) {
    match id.rsplit_once('#') {
        Some((who, run)) if !who.is_empty() && !run.is_empty() => (who, Some(run)),
        _ => (id, None),
    }
}

/// A holder identity as people read it: `` `alice@laptop` (run `run-1f2e3d4c`) ``.
pub fn holder_text(id: &str) -> String {
    match holder_parts(id) {
        (who, Some(run)) => format!("`{who}` (run `{run}`)"),
        (who, None) => format!("`{who}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_names_who_and_which_run() {
        assert_eq!(
            holder_parts("alice@laptop#run-1f2e3d4c"),
            ("alice@laptop", Some("run-1f2e3d4c"))
        );
        assert_eq!(
            holder_parts("ci#pipeline-42/deploy:gstg"),
            ("ci", Some("pipeline-42/deploy:gstg"))
        );
        assert_eq!(
            holder_parts("rails-auto-deploy"),
            ("rails-auto-deploy", None)
        );
        assert_eq!(holder_parts("#x"), ("#x", None));
        assert_eq!(
            holder_text("alice@laptop#run-1"),
            "`alice@laptop` (run `run-1`)"
        );
        assert_eq!(holder_text("rails"), "`rails`");
    }
}
