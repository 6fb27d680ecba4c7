//! Requests to handlers, by method and exact path.

use std::future::Future;
use std::pin::Pin;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, StatusCode};

/// A request as handlers get it (the body is not read yet).
pub type Request = hyper::Request<Incoming>;
/// A response: every body is small and whole.
pub type Response = hyper::Response<Full<Bytes>>;

pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
pub const JSON_CONTENT_TYPE: &str = "application/json";

type Handler = Box<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

struct Route {
    method: Method,
    path: &'static str,
    handler: Handler,
}

/// The routes a server answers; built from parts with [`Router::route`] and [`Router::merge`].
///
/// A request no route takes gets 404 when its path is unknown and some route serves its method,
/// else 405 with `Allow` listing the methods served at the path (at any path if it is unknown).
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `handler` for `method` on `path` (exactly; the query is not part of the path).
    pub fn route<F, Fut>(mut self, method: Method, path: &'static str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        self.routes.push(Route {
            method,
            path,
            handler: Box::new(move |req| Box::pin(handler(req))),
        });
        self
    }

    /// Adds every route of `other`.
    pub fn merge(mut self, other: Router) -> Self {
        self.routes.extend(other.routes);
        self
    }

    pub async fn handle(&self, req: Request) -> Response {
        let path = req.uri().path();
        let routes = &self.routes;
        if let Some(route) = routes
            .iter()
            .find(|r| r.method == req.method() && r.path == path)
        {
            return (route.handler)(req).await;
        }
        let known_path = routes.iter().any(|r| r.path == path);
        if !known_path && routes.iter().any(|r| r.method == req.method()) {
            return text(StatusCode::NOT_FOUND, "not found");
        }
        let mut allow: Vec<&str> = Vec::new();
        for r in routes.iter().filter(|r| !known_path || r.path == path) {
            if !allow.contains(&r.method.as_str()) {
                allow.push(r.method.as_str());
            }
        }
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        if let Ok(allow) = HeaderValue::from_str(&allow.join(", ")) {
            response.headers_mut().insert(ALLOW, allow);
        }
        response
    }
}

/// A response with `body` of `content_type`, not to be cached.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A plain-text response.
pub fn text(status: StatusCode, body: &'static str) -> Response {
    response(status, TEXT_CONTENT_TYPE, body)
}
