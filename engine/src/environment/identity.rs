//! Who is running Ferry: the operating system's user and groups (from `id`, so that no variable a
//! user can set changes the answer), matched against an environment's `runners` and `promoters`
//! (names, `group:NAME`, or `*`).

/// A user and the groups they are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The user this process runs as.
    pub fn current() -> Identity {
        let id = |flag: &str| {
            std::process::Command::new("id")
                .arg(flag)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let user = id("-un")
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("USERNAME").ok())
            .unwrap_or_else(|| "unknown".to_string());
        let groups = id("-Gn")
            .map(|g| g.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        Identity { user, groups }
    }

    /// Whether a role list lets this user in (`None`: no list, anyone).
    pub fn is_in(&self, list: Option<&[String]>) -> bool {
        let Some(list) = list else {
            return true;
        };
        list.iter().any(|who| {
            who == "*"
                || *who == self.user
                || who
                    .strip_prefix("group:")
                    .is_some_and(|g| self.groups.iter().any(|mine| mine == g))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_match_names_groups_and_everyone() {
        let me = Identity {
            user: "ana".into(),
            groups: vec!["staff".into(), "release".into()],
        };
        assert!(me.is_in(None));
        assert!(me.is_in(Some(&["bo".into(), "ana".into()])));
        assert!(me.is_in(Some(&["group:release".into()])));
        assert!(me.is_in(Some(&["*".into()])));
        assert!(!me.is_in(Some(&["bo".into(), "group:ops".into()])));
        assert!(!me.is_in(Some(&[])));
        assert!(!Identity::current().user.is_empty());
    }
}
