//! Per-path rules: what a request under a path prefix needs beyond a valid token (a role, a
//! scope), or that it needs none (`anonymous`).
//!
//! The rule with the longest prefix that matches the normalised path on a segment boundary
//! wins (`/admin` matches `/admin` and `/admin/x`, not `/administrator`); among rules with the
//! same prefix, one that names the request's method wins over one for every method. A path
//! no rule matches needs a valid token. When a path can be read two ways
//! ([`OriginalPath::readings`]), the rules of both readings apply: it is anonymous only if
//! both are, and it needs every role and scope that either needs.

use serde::Deserialize;
use verifier::Claims;
use verifier::middleware::guard::Rule as _;
use verifier::middleware::require_role::HasRole;
use verifier::middleware::require_scope::HasScope;

use crate::uri::OriginalPath;

/// One rule, as it is written in the settings (`[[rules]]` in TOML).
///
/// ```
/// let rule = gateway::Rule {
///     prefix: "/admin".into(),
///     role: Some("admin".into()),
///     ..gateway::Rule::default()
/// };
/// assert!(rule.methods.is_empty(), "every method");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The path prefix, matched on segment boundaries against the normalised path: `/`,
    /// `/admin`, `/api/v1/orders`. No `%`, `;`, `\`, `?`, `#`, empty or dot segments; a
    /// trailing `/` is dropped.
    pub prefix: String,
    /// The methods the rule is for (`["POST", "DELETE"]`); empty, the default: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// A role the token must grant (its `roles` claim).
    #[serde(default)]
    pub role: Option<String>,
    /// Scopes the token must grant, space-separated: all of them (its `scope` claim).
    #[serde(default)]
    pub scope: Option<String>,
    /// Requests without an `Authorization` header pass, with no identity headers. A request
    /// that sends a token is verified as anywhere else: a valid one adds the identity, an
    /// invalid one is refused.
    #[serde(default)]
    pub anonymous: bool,
}

/// A rule that cannot work, named by its place in the list and its field.
///
/// ```
/// let rules = [gateway::Rule { prefix: "admin".into(), ..Default::default() }];
/// let error = gateway::Settings { rules: rules.to_vec(), ..Default::default() }.check().unwrap_err();
/// assert!(error.to_string().contains("rules[0].prefix"), "{error}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rules[{index}].{field}: {message}")]
pub struct RuleError {
    index: usize,
    field: &'static str,
    message: String,
}

/// The rules, checked and ordered for matching.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    /// Longest prefix first; among equal prefixes, rules that name methods first.
    rules: Vec<Compiled>,
}

#[derive(Debug, Clone)]
struct Compiled {
    prefix: String,
    /// Upper case; empty: every method.
    methods: Vec<String>,
    anonymous: bool,
    role: Option<HasRole>,
    scope: Option<HasScope>,
}

impl Compiled {
    fn applies(&self, path: &[u8], method: &str) -> bool {
        let prefix = self.prefix.as_bytes();
        let under = prefix == b"/"
            || path == prefix
            || (path.starts_with(prefix) && path.get(prefix.len()) == Some(&b'/'));
        under && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }
}

impl Rules {
    /// Checks `rules` and orders them for matching.
    pub(crate) fn new(rules: &[Rule]) -> Result<Self, RuleError> {
        let mut compiled: Vec<Compiled> = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let error = |field, message: &str| RuleError {
                index,
                field,
                message: message.to_owned(),
            };
            let prefix = normal_prefix(&rule.prefix).map_err(|m| error("prefix", m))?;
            let mut methods = Vec::with_capacity(rule.methods.len());
            for method in &rule.methods {
                if http::Method::from_bytes(method.as_bytes()).is_err() {
                    return Err(error("methods", &format!("`{method}` is not a method")));
                }
                methods.push(method.to_ascii_uppercase());
            }
            let role = match rule.role.as_deref().map(str::trim) {
                Some("") => return Err(error("role", "is empty")),
                role => role.map(HasRole::new),
            };
            let scope = match rule.scope.as_deref().map(str::trim) {
                Some("") => return Err(error("scope", "is empty")),
                scope => scope.map(HasScope::new),
            };
            if rule.anonymous && (role.is_some() || scope.is_some()) {
                return Err(error(
                    "anonymous",
                    "an anonymous rule cannot also require a role or a scope",
                ));
            }
            let overlaps = |other: &Compiled| {
                other.prefix == prefix
                    && other.methods.is_empty() == methods.is_empty()
                    && (methods.is_empty() || other.methods.iter().any(|m| methods.contains(m)))
            };
            if let Some(earlier) = compiled.iter().position(overlaps) {
                return Err(error(
                    "prefix",
                    &format!("`{prefix}` is already ruled for these methods by rules[{earlier}]"),
                ));
            }
            compiled.push(Compiled {
                prefix,
                methods,
                anonymous: rule.anonymous,
                role,
                scope,
            });
        }
        compiled.sort_by(|a, b| {
            (b.prefix.len(), !b.methods.is_empty()).cmp(&(a.prefix.len(), !a.methods.is_empty()))
        });
        Ok(Self { rules: compiled })
    }

    /// What a `method` request to `path` needs. `method` is upper case.
    pub(crate) fn access(&self, path: &OriginalPath, method: &str) -> Access<'_> {
        let mut readings = path.readings();
        let rule = |reading: Option<&[u8]>| -> Option<Option<&Compiled>> {
            let reading = reading?;
            Some(self.rules.iter().find(|r| r.applies(reading, method)))
        };
        Access {
            whole: rule(readings.next()).flatten(),
            without_params: rule(readings.next()),
        }
    }
}

/// What a request needs: the rules that apply to the readings of its path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access<'a> {
    /// The rule of the whole path; `None`: a valid token.
    whole: Option<&'a Compiled>,
    /// The rule of the path without `;` parameters, when it has some.
    without_params: Option<Option<&'a Compiled>>,
}

impl Access<'_> {
    /// Whether a request without a token passes: every reading's rule is anonymous.
    pub(crate) fn is_anonymous(&self) -> bool {
        let anonymous = |rule: Option<&Compiled>| rule.is_some_and(|r| r.anonymous);
        anonymous(self.whole) && self.without_params.is_none_or(anonymous)
    }

    /// `None` when `caller` has every role and scope the rules need; else the `403`.
    pub(crate) fn refuse(&self, caller: &Claims) -> Option<axum::response::Response> {
        [self.whole, self.without_params.flatten()]
            .into_iter()
            .flatten()
            .find_map(|rule| {
                let role = rule.role.as_ref().and_then(|r| r.refuse(caller));
                role.or_else(|| rule.scope.as_ref().and_then(|s| s.refuse(caller)))
            })
    }
}

/// `prefix` in the form paths are matched in, or why it cannot be one.
fn normal_prefix(prefix: &str) -> Result<String, &'static str> {
    if !prefix.starts_with('/') {
        return Err("must start with `/`");
    }
    if prefix
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '%' | ';' | '\\' | '?' | '#'))
    {
        return Err("must be a decoded path: no spaces, `%`, `;`, `\\`, `?` or `#`");
    }
    let trimmed = match prefix.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => prefix,
    };
    if trimmed != "/"
        && trimmed[1..]
            .split('/')
            .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return Err("must not have empty, `.` or `..` segments");
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)] // test code: a panic is a failure report

    use super::*;
    use verifier::Audience;

    fn rule(prefix: &str) -> Rule {
        Rule {
            prefix: prefix.into(),
            ..Rule::default()
        }
    }

    fn claims(roles: &[&str], scope: Option<&str>) -> Claims {
        Claims {
            iss: "i".into(),
            sub: "u".into(),
            aud: Audience::One("api".into()),
            exp: 2,
            iat: 1,
            nbf: None,
            jti: "j".into(),
            sid: "s".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            client_id: None,
            scope: scope.map(String::from),
            cnf: None,
        }
    }

    /// The `prefix` of the rule `method uri` matches, `"-"` for none.
    fn matched(rules: &Rules, method: &str, uri: &str) -> String {
        let path = OriginalPath::parse(uri).unwrap();
        match rules.access(&path, method) {
            Access {
                whole: Some(rule),
                without_params: None,
            } => format!("{} {:?}", rule.prefix, rule.methods),
            Access {
                whole: None,
                without_params: None,
            } => "-".into(),
            other => panic!("two readings: {other:?}"),
        }
    }

    #[test]
    fn the_longest_prefix_on_a_segment_boundary_wins() {
        let rules = Rules::new(&[
            rule("/admin"),
            rule("/admin/public/"),
            rule("/api"),
            rule("/api/v1/orders"),
        ])
        .unwrap();
        for (uri, prefix) in [
            ("/admin", "/admin []"),
            ("/admin/", "/admin []"),
            ("/admin/x", "/admin []"),
            ("/administrator", "-"),
            ("/admin/publicity", "/admin []"),
            ("/admin/public", "/admin/public []"),
            ("/admin/public/x", "/admin/public []"),
            ("/api/v1/orders/7", "/api/v1/orders []"),
            ("/api/v1/order", "/api []"),
            ("/", "-"),
            ("/other", "-"),
        ] {
            assert_eq!(matched(&rules, "GET", uri), prefix, "{uri}");
        }
        let root = Rules::new(&[rule("/")]).unwrap();
        assert_eq!(matched(&root, "GET", "/"), "/ []");
        assert_eq!(matched(&root, "GET", "/anything/at/all"), "/ []");
    }

    #[test]
    fn a_rule_for_a_method_wins_over_one_for_every_method_and_applies_to_its_methods_only() {
        let post = Rule {
            methods: vec!["post".into(), "DELETE".into()],
            ..rule("/orders")
        };
        let rules = Rules::new(&[rule("/orders"), post, rule("/")]).unwrap();
        assert_eq!(matched(&rules, "GET", "/orders/1"), "/orders []");
        assert_eq!(
            matched(&rules, "POST", "/orders/1"),
            r#"/orders ["POST", "DELETE"]"#
        );
        assert_eq!(
            matched(&rules, "DELETE", "/orders"),
            r#"/orders ["POST", "DELETE"]"#
        );
        // Without a rule for every method there, another method falls to a shorter prefix.
        let post_only = Rule {
            methods: vec!["POST".into()],
            ..rule("/orders")
        };
        let rules = Rules::new(&[post_only, rule("/")]).unwrap();
        assert_eq!(matched(&rules, "GET", "/orders"), "/ []");
    }

    #[test]
    fn an_anonymous_path_is_anonymous_only_under_every_reading() {
        let public = Rule {
            anonymous: true,
            ..rule("/public")
        };
        let admin = Rule {
            role: Some("admin".into()),
            ..rule("/admin")
        };
        let rules = Rules::new(&[public, admin]).unwrap();
        let access = |uri: &str| {
            let path = OriginalPath::parse(uri).unwrap();
            let anonymous = rules.access(&path, "GET").is_anonymous();
            let user = rules
                .access(&path, "GET")
                .refuse(&claims(&["user"], None))
                .map(|r| r.status().as_u16());
            let admin = rules
                .access(&path, "GET")
                .refuse(&claims(&["admin"], None))
                .map(|r| r.status().as_u16());
            (anonymous, user, admin)
        };
        assert_eq!(access("/public/x"), (true, None, None));
        // Read whole, `public;x=1` is not `public`: it needs a token.
        assert_eq!(access("/public;x=1/y"), (false, None, None));
        assert_eq!(access("/other"), (false, None, None));
        assert_eq!(access("/admin/x"), (false, Some(403), None));
        // Tomcat reads `/admin;x/y` as `/admin/y`.
        assert_eq!(access("/admin;x/y"), (false, Some(403), None));
        // Under the whole reading it is not under `/public`.
        assert_eq!(access("/public;/admin"), (false, None, None));
        assert_eq!(access("/;x/admin"), (false, Some(403), None));
    }

    #[test]
    fn a_role_and_a_scope_are_both_needed() {
        let both = Rule {
            role: Some("clerk".into()),
            scope: Some("orders:read orders:write".into()),
            ..rule("/orders")
        };
        let rules = Rules::new(&[both]).unwrap();
        let path = OriginalPath::parse("/orders/1").unwrap();
        let status = |roles: &[&str], scope: Option<&str>| {
            rules
                .access(&path, "GET")
                .refuse(&claims(roles, scope))
                .map(|r| r.status().as_u16())
        };
        assert_eq!(status(&["clerk"], Some("orders:write orders:read")), None);
        assert_eq!(status(&["clerk"], Some("orders:read")), Some(403));
        assert_eq!(status(&[], Some("orders:read orders:write")), Some(403));
        let scope_refusal = rules
            .access(&path, "GET")
            .refuse(&claims(&["clerk"], None))
            .unwrap();
        let challenge = scope_refusal.headers()["www-authenticate"]
            .to_str()
            .unwrap();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
    }

    #[test]
    fn a_rule_that_cannot_work_is_refused_naming_its_field() {
        let cases = [
            (vec![rule("admin")], "rules[0].prefix"),
            (vec![rule("")], "rules[0].prefix"),
            (vec![rule("/a//b")], "rules[0].prefix"),
            (vec![rule("/a/../b")], "rules[0].prefix"),
            (vec![rule("/a/./b")], "rules[0].prefix"),
            (vec![rule("/a%2Fb")], "rules[0].prefix"),
            (vec![rule("/a;b")], "rules[0].prefix"),
            (vec![rule("/a b")], "rules[0].prefix"),
            (vec![rule("/a?b")], "rules[0].prefix"),
            (
                vec![rule("/"), rule("/a"), rule("/a/")],
                "rules[2].prefix: `/a` is already ruled for these methods by rules[1]",
            ),
            (
                vec![
                    Rule {
                        methods: vec!["GET".into(), "POST".into()],
                        ..rule("/a")
                    },
                    Rule {
                        methods: vec!["post".into()],
                        ..rule("/a")
                    },
                ],
                "rules[1].prefix",
            ),
            (
                vec![Rule {
                    methods: vec!["G T".into()],
                    ..rule("/a")
                }],
                "rules[0].methods",
            ),
            (
                vec![Rule {
                    role: Some(" ".into()),
                    ..rule("/a")
                }],
                "rules[0].role",
            ),
            (
                vec![Rule {
                    scope: Some(String::new()),
                    ..rule("/a")
                }],
                "rules[0].scope",
            ),
            (
                vec![Rule {
                    anonymous: true,
                    role: Some("admin".into()),
                    ..rule("/a")
                }],
                "rules[0].anonymous",
            ),
        ];
        for (rules, expected) in cases {
            let error = Rules::new(&rules).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{rules:?}: {error}");
        }
        // Same prefix, other methods, or every method beside some: fine.
        let get = Rule {
            methods: vec!["GET".into()],
            ..rule("/a")
        };
        let post = Rule {
            methods: vec!["POST".into()],
            ..rule("/a")
        };
        assert!(Rules::new(&[get, post, rule("/a"), rule("/a/b")]).is_ok());
    }
}
