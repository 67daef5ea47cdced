//! The matched route template for middleware outside the router ([`crate::access`],
//! [`crate::metrics`]): such middleware runs before routing, so it never sees axum's
//! `MatchedPath` on the request. It puts a [`RouteSlot`] in the request; [`note_route`], a
//! route layer inside the router, fills it. Several outer layers share one slot.

use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Where [`note_route`] leaves the matched route for the layers outside the router.
#[derive(Clone, Default)]
pub(crate) struct RouteSlot(Arc<OnceLock<MatchedPath>>);

impl RouteSlot {
    /// The request's slot, put there by an outer layer before, or a new one.
    pub(crate) fn of(request: &mut Request) -> Self {
        request
            .extensions_mut()
            .get_or_insert_with(RouteSlot::default)
            .clone()
    }

    /// The route template that matched, if one did.
    pub(crate) fn route(&self) -> Option<&str> {
        self.0.get().map(MatchedPath::as_str)
    }
}

/// Inside the router (a route layer): the route that matched, into the request's slot.
pub(crate) async fn note_route(request: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) = (
        request.extensions().get::<RouteSlot>(),
        request.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(path.clone());
    }
    next.run(request).await
}
