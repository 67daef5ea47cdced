//! The Redis ACL users documented in `docs/operations.md`, as tests apply them: the line the
//! operator is told to run, with a test's user name, password and key prefix.

/// The operations guide, whose `ACL SETUSER` lines the tests apply as written.
const OPERATIONS_GUIDE: &str = include_str!("../../../docs/operations.md");

/// A Redis ACL user made from a line of `docs/operations.md`: `ACL SETUSER <name> ...` with a
/// fresh user name and password, and the test's key prefix in place of the default `auth`.
///
/// ```
/// let user = test_support::AclUser::documented("verifier", "t123");
/// assert!(user.name.starts_with("verifier-"));
/// assert!(user.setuser_args().contains(&"%R~t123:s:*".to_owned()));
/// assert!(!user.setuser_args().iter().any(|a| a.contains("CHANGE-ME")));
/// ```
#[derive(Debug, Clone)]
pub struct AclUser {
    /// The user name: the documented one and a random suffix.
    pub name: String,
    /// A random password.
    pub password: String,
    /// The rules after `ACL SETUSER <name>`, as documented, adapted.
    rules: Vec<String>,
}

impl AclUser {
    /// The documented user `role` (`auth-center` or `verifier`) for keys under `prefix`.
    ///
    /// # Panics
    /// If `docs/operations.md` has no `ACL SETUSER <role> ...` line.
    pub fn documented(role: &str, prefix: &str) -> Self {
        let start = format!("ACL SETUSER {role} ");
        let line = OPERATIONS_GUIDE
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&start))
            .unwrap_or_else(|| panic!("docs/operations.md documents no `{start}...` line"));
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let rules = line[start.len()..]
            .split_whitespace()
            .map(|rule| {
                if rule == ">CHANGE-ME" {
                    format!(">{password}")
                } else {
                    rule.replace("~auth:", &format!("~{prefix}:"))
                }
            })
            .collect();
        Self {
            name: format!("{role}-{suffix}"),
            password,
            rules,
        }
    }

    /// The arguments of `ACL` that create the user: `SETUSER <name> <rules>...`.
    pub fn setuser_args(&self) -> Vec<String> {
        let mut args = vec!["SETUSER".to_owned(), self.name.clone()];
        args.extend(self.rules.iter().cloned());
        args
    }

    /// The same user without the rules that contain any of `parts` (a user as it was
    /// documented before a permission was added, say).
    ///
    /// ```
    /// let user = test_support::AclUser::documented("verifier", "t1").without_rules(&["selftest"]);
    /// assert!(!user.setuser_args().iter().any(|a| a.contains("selftest")));
    /// ```
    pub fn without_rules(mut self, parts: &[&str]) -> Self {
        self.rules
            .retain(|rule| !parts.iter().any(|p| rule.contains(p)));
        self
    }
}
