//! The admin's pages: the users (search, disable and enable, roles, force logout) and the
//! audit log, a page at a time. The use cases check the `admin` role; anyone else gets
//! their `403` as a page.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde::Deserialize;

use super::session::signed_in;
use super::{Page, PageForm, PageQuery, check_csrf, html, redirect, view};
use crate::http::AppState;
use crate::http::extract::{ApiPath, Client};

/// Users on one page of the list.
const USERS_PER_PAGE: u32 = 20;
/// Audit entries on one page of the log.
const EVENTS_PER_PAGE: u32 = 50;

/// The `limit` and `offset` of page `page` (from 1) with `per_page` entries: one more than
/// fits, to tell whether a next page exists.
fn window(page: u32, per_page: u32) -> (i64, i64) {
    let offset = i64::from(page.saturating_sub(1)) * i64::from(per_page);
    (i64::from(per_page) + 1, offset)
}

/// One page of what a `window` query found: at most `per_page` items, and whether the one
/// extra item the query asked for says there is a next page.
fn one_page<T>(mut found: Vec<T>, per_page: u32) -> (Vec<T>, bool) {
    let has_next = found.len() > per_page as usize;
    found.truncate(per_page as usize);
    (found, has_next)
}

/// `GET /account/admin/users?q=&page=`
pub(super) async fn users(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let user = signed_in(&auth, &headers, &client).await?;
    let query = PageQuery::of(&uri);
    let (search, page) = (query.q.as_deref().unwrap_or_default(), query.page());
    let (limit, offset) = window(page, USERS_PER_PAGE);
    let found = auth
        .admin_search_users(&user.claims, search, limit, offset)
        .await
        .map_err(|e| user.fail(e))?;
    let (found, has_next) = one_page(found, USERS_PER_PAGE);
    let rows: Vec<view::UserRow> = found
        .into_iter()
        .map(|u| view::UserRow {
            id: u.id,
            username: u.username,
            roles: u.roles,
            disabled: u.disabled,
            created_ms: u.created_ms,
        })
        .collect();
    let list = view::Users {
        query: search,
        page,
        has_next,
        users: &rows,
        notice: query.notice(),
    };
    Ok(user.respond(html(StatusCode::OK, view::users(&user.nav(), &list))))
}

/// The form of an action on a user, with the search and page to return to.
#[derive(Deserialize)]
pub(super) struct UserAction {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<u32>,
    /// For `roles`: the new roles, separated by commas or spaces.
    #[serde(default)]
    roles: String,
}

/// `POST /account/admin/users/{id}/{action}`: `disable`, `enable`, `logout` (every
/// session) or `roles`; then the list again.
pub(super) async fn user_action(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    ApiPath((id, action)): ApiPath<(String, String)>,
    PageForm(form): PageForm<UserAction>,
) -> Page {
    check_csrf(&auth, &headers, &form.csrf)?;
    let user = signed_in(&auth, &headers, &client).await?;
    let admin = &user.claims;
    let done = match action.as_str() {
        "disable" => auth
            .admin_set_disabled(admin, &id, true, &client)
            .await
            .map(|_| "disabled"),
        "enable" => auth
            .admin_set_disabled(admin, &id, false, &client)
            .await
            .map(|_| "enabled"),
        "logout" => auth
            .admin_force_logout(admin, &id, None, &client)
            .await
            .map(|_| "logged-out"),
        "roles" => {
            let roles = form
                .roles
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect();
            auth.admin_set_roles(admin, &id, roles, &client)
                .await
                .map(|_| "roles-set")
        }
        _ => {
            let unknown = crate::http::error::ApiError::http(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such action",
            );
            return Err(user.fail(unknown));
        }
    };
    let notice = done.map_err(|e| user.fail(e))?;
    let back = view::users_url(&form.q, form.page.unwrap_or(1).max(1));
    Ok(user.respond(redirect(&format!("{back}&notice={notice}"), [])))
}

/// `GET /account/admin/audit?page=`
pub(super) async fn audit(
    State(auth): AppState,
    Client(client): Client,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let user = signed_in(&auth, &headers, &client).await?;
    let page = PageQuery::of(&uri).page();
    let (limit, offset) = window(page, EVENTS_PER_PAGE);
    let events = auth
        .admin_audit_page(&user.claims, limit, offset)
        .await
        .map_err(|e| user.fail(e))?;
    let (events, has_next) = one_page(events, EVENTS_PER_PAGE);
    let rows: Vec<view::AuditRow> = events
        .into_iter()
        .map(|e| view::AuditRow {
            at_ms: e.at_ms,
            event: e.event,
            actor: e.actor.unwrap_or_default(),
            target: e.target.unwrap_or_default(),
            ip: e.ip.unwrap_or_default(),
            detail: e.detail.unwrap_or_default(),
        })
        .collect();
    let main = view::audit(&user.nav(), page, has_next, &rows);
    Ok(user.respond(html(StatusCode::OK, main)))
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn a_page_asks_for_one_entry_more_than_it_shows() {
        assert_eq!(window(1, 20), (21, 0));
        assert_eq!(window(3, 20), (21, 40));
        // Page 0 is page 1; the last page number does not overflow.
        assert_eq!(window(0, 20), (21, 0));
        assert_eq!(window(u32::MAX, 50).1, i64::from(u32::MAX - 1) * 50);
    }
}
