//! The pages' HTML (maud: escaped by default, checked at compile time). Every page has the
//! same frame: a skip link, the navigation of a signed-in user, one `main`, the stylesheet
//! and the one script from `assets`, never an inline script or style.

use maud::{DOCTYPE, Markup, html};

use super::assets;
use crate::domain::credentials::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

/// The navigation of a signed-in user: which links, and the token of the sign-out form.
pub(super) struct Nav<'a> {
    pub admin: bool,
    pub csrf: &'a str,
}

/// A whole page.
pub(super) fn page(title: &str, nav: Option<&Nav<'_>>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light";
                title { (title) " · auth-center" }
                link rel="icon" type="image/svg+xml" href=(assets::ICON_SVG.path());
                link rel="stylesheet" href=(assets::STYLESHEET.path());
                script src=(assets::SCRIPT.path()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "auth-center" }
                    @if let Some(nav) = nav {
                        nav aria-label="Account" {
                            ul {
                                li { a href="/account/devices" { "Your devices" } }
                                li { a href="/account/password" { "Password" } }
                                @if nav.admin {
                                    li { a href="/account/admin/users" { "Users" } }
                                    li { a href="/account/admin/audit" { "Audit log" } }
                                }
                                li {
                                    form.inline method="post" action="/account/sign-out" {
                                        (csrf_field(nav.csrf))
                                        button.link type="submit" { "Sign out" }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (main)
                }
            }
        }
    }
}

/// The hidden CSRF field of every form.
pub(super) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A success notice (announced politely by screen readers).
pub(super) fn notice(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.notice role="status" { (message) }
        }
    }
}

/// A form's error, announced at once; the fields it concerns point at it.
pub(super) fn error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.error #form-error role="alert" { (message) }
        }
    }
}

/// A timestamp (ms since the epoch), readable, with the machine form in `datetime`.
pub(super) fn when(ms: i64) -> Markup {
    let readable = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default();
    html! { time datetime=(super::super::rfc3339(ms)) { (readable) } }
}

/// The sign-in form.
pub(super) struct SignIn<'a> {
    pub csrf: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
}

pub(super) fn sign_in(form: &SignIn<'_>) -> Markup {
    let invalid = form.error.is_some();
    let main = html! {
        (notice(form.notice))
        (error(form.error))
        form.card method="post" action="/account/sign-in" {
            (csrf_field(form.csrf))
            label for="username" { "Username" }
            input #username name="username" type="text" autocomplete="username"
                autocapitalize="none" spellcheck="false" required value=(form.username)
                aria-invalid=[invalid.then_some("true")]
                aria-describedby=[invalid.then_some("form-error")]
                autofocus[!invalid || form.username.is_empty()];
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="current-password"
                required aria-invalid=[invalid.then_some("true")]
                aria-describedby=[invalid.then_some("form-error")]
                autofocus[invalid && !form.username.is_empty()];
            button type="submit" { "Sign in" }
        }
    };
    page("Sign in", None, main)
}

/// One session on the devices page.
pub(super) struct Device {
    pub sid: String,
    pub name: String,
    pub user_agent: String,
    pub ip: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub current: bool,
}

pub(super) fn devices(nav: &Nav<'_>, devices: &[Device], message: Option<&str>) -> Markup {
    let others = devices.iter().filter(|d| !d.current).count();
    let main = html! {
        (notice(message))
        p { "Every place where you are signed in. End a session you do not recognise: its tokens stop working everywhere at once." }
        ul.devices {
            @for device in devices {
                li.device.current[device.current] {
                    h2 {
                        (device.name)
                        @if device.current { " " span.badge { "This device" } }
                    }
                    dl {
                        dt { "IP address" } dd { (device.ip) }
                        dt { "Signed in" } dd { (when(device.created_ms)) }
                        dt { "Last seen" } dd { (when(device.last_seen_ms)) }
                    }
                    details {
                        summary { "Browser details" }
                        p.agent { (device.user_agent) }
                    }
                    @if device.current {
                        p.hint { "To end this session, sign out." }
                    } @else {
                        form method="post" action="/account/devices/end" {
                            (csrf_field(nav.csrf))
                            input type="hidden" name="sid" value=(device.sid);
                            button.danger type="submit" aria-label={ "End the session of " (device.name) ", last seen from " (device.ip) } {
                                "End this session"
                            }
                        }
                    }
                }
            }
        }
        @if others > 0 {
            form method="post" action="/account/devices/end-others" {
                (csrf_field(nav.csrf))
                button.danger type="submit" { "End all other sessions (" (others) ")" }
            }
        }
    };
    page("Your devices", Some(nav), main)
}

/// The password change form.
pub(super) fn password(nav: &Nav<'_>, failure: Option<&str>) -> Markup {
    let invalid = failure.is_some();
    let main = html! {
        (error(failure))
        form.card method="post" action="/account/password" {
            (csrf_field(nav.csrf))
            label for="current_password" { "Current password" }
            input #current_password name="current_password" type="password"
                autocomplete="current-password" required
                aria-invalid=[invalid.then_some("true")]
                aria-describedby=[invalid.then_some("form-error")];
            label for="new_password" { "New password" }
            p.hint #new-password-hint {
                "At least " (MIN_PASSWORD_CHARS) " characters, at most " (MAX_PASSWORD_CHARS)
                ". Not a common or breached password, not your username. No other rules: a long phrase is best."
            }
            input #new_password name="new_password" type="password" autocomplete="new-password"
                required minlength=(MIN_PASSWORD_CHARS)
                data-min=(MIN_PASSWORD_CHARS) data-max=(MAX_PASSWORD_CHARS)
                aria-describedby="new-password-hint new-password-feedback";
            p.feedback #new-password-feedback aria-live="polite" {}
            label for="confirm_password" { "New password, again" }
            input #confirm_password name="confirm_password" type="password"
                autocomplete="new-password" required;
            button type="submit" { "Change password" }
        }
        p.hint { "Changing your password signs you out everywhere else." }
    };
    page("Change password", Some(nav), main)
}

/// A user on the admin's list.
pub(super) struct UserRow {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_ms: i64,
}

/// The admin's user list: a search, a page of users with their actions, paging links.
pub(super) struct Users<'a> {
    pub query: &'a str,
    pub page: u32,
    pub has_next: bool,
    pub users: &'a [UserRow],
    pub notice: Option<&'a str>,
}

pub(super) fn users(nav: &Nav<'_>, list: &Users<'_>) -> Markup {
    let main = html! {
        (notice(list.notice))
        form.search method="get" action="/account/admin/users" role="search" {
            label for="q" { "Search usernames" }
            input #q name="q" type="search" value=(list.query) maxlength="64";
            button type="submit" { "Search" }
        }
        @if list.users.is_empty() {
            p { "No users found." }
        }
        ul.users {
            @for user in list.users {
                li.user {
                    h2 {
                        (user.username)
                        @if user.disabled { " " span.badge.off { "Disabled" } }
                    }
                    dl {
                        dt { "Roles" }
                        dd { @if user.roles.is_empty() { "none" } @else { (user.roles.join(", ")) } }
                        dt { "Created" } dd { (when(user.created_ms)) }
                        dt { "Id" } dd.id { (user.id) }
                    }
                    div.actions {
                        (user_action(nav, list, &user.id, if user.disabled { "enable" } else { "disable" },
                            html! { @if user.disabled { "Enable" } @else { "Disable" } " " span.sr { (user.username) } },
                            !user.disabled))
                        (user_action(nav, list, &user.id, "logout",
                            html! { "Force logout" span.sr { " of " (user.username) } }, true))
                    }
                    form.roles method="post" action={ "/account/admin/users/" (user.id) "/roles" } {
                        (csrf_field(nav.csrf))
                        (back_fields(list))
                        @let field = format!("roles-{}", user.id);
                        label for=(field) { "Roles of " (user.username) " (comma-separated)" }
                        input id=(field) name="roles" type="text" value=(user.roles.join(", "))
                            autocapitalize="none" spellcheck="false";
                        button type="submit" { "Set roles" }
                    }
                }
            }
        }
        (pager(list.page, list.has_next, |page| users_url(list.query, page)))
    };
    page("Users", Some(nav), main)
}

/// A one-button form for an action on a user.
fn user_action(
    nav: &Nav<'_>,
    list: &Users<'_>,
    id: &str,
    action: &str,
    label: Markup,
    danger: bool,
) -> Markup {
    html! {
        form.inline method="post" action={ "/account/admin/users/" (id) "/" (action) } {
            (csrf_field(nav.csrf))
            (back_fields(list))
            button.danger[danger] type="submit" { (label) }
        }
    }
}

/// Where an admin action returns to: the same search and page.
fn back_fields(list: &Users<'_>) -> Markup {
    html! {
        input type="hidden" name="q" value=(list.query);
        input type="hidden" name="page" value=(list.page);
    }
}

/// The users list's address for a search and page.
pub(super) fn users_url(query: &str, page: u32) -> String {
    let query = serde_urlencoded::to_string([("q", query), ("page", &page.to_string())])
        .unwrap_or_default();
    format!("/account/admin/users?{query}")
}

/// An audit-log entry as shown.
pub(super) struct AuditRow {
    pub at_ms: i64,
    pub event: String,
    pub actor: String,
    pub target: String,
    pub ip: String,
    pub detail: String,
}

pub(super) fn audit(nav: &Nav<'_>, page_number: u32, has_next: bool, rows: &[AuditRow]) -> Markup {
    let main = html! {
        div.scroll role="region" aria-label="Audit log entries" tabindex="0" {
            table {
                caption { "Newest first, page " (page_number) }
                thead {
                    tr {
                        th scope="col" { "When" }
                        th scope="col" { "Event" }
                        th scope="col" { "Actor" }
                        th scope="col" { "Target" }
                        th scope="col" { "IP" }
                        th scope="col" { "Detail" }
                    }
                }
                tbody {
                    @for row in rows {
                        tr {
                            td { (when(row.at_ms)) }
                            td { (row.event) }
                            td.id { (row.actor) }
                            td.id { (row.target) }
                            td { (row.ip) }
                            td { (row.detail) }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No entries on this page." } }
        (pager(page_number, has_next, |page| format!("/account/admin/audit?page={page}")))
    };
    page("Audit log", Some(nav), main)
}

/// Previous and next links of a paged list.
fn pager(page_number: u32, has_next: bool, url: impl Fn(u32) -> String) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if page_number > 1 {
                a rel="prev" href=(url(page_number - 1)) { "← Previous page" }
            }
            @if has_next {
                a rel="next" href=(url(page_number + 1)) { "Next page →" }
            }
        }
    }
}

/// A page for an error: its status's title and the message of the outcome.
pub(super) fn failure(nav: Option<&Nav<'_>>, title: &str, message: &str) -> Markup {
    let main = html! {
        p.error role="alert" { (message) }
        p { a href="/account/devices" { "Back to your account" } }
    };
    page(title, nav, main)
}
