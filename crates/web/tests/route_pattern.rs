//! `bulwark_web::routing::route_pattern`: found once before routing, and the router's own choice.
//! (An integration test: the architecture test keeps raw actix route registration out of `src/`.)

use std::rc::Rc;

use actix_web::dev::Service as _;
use actix_web::test::TestRequest;
use actix_web::{HttpMessage, HttpRequest, web};
use bulwark_web::routing::route_pattern;

/// What the middleware found before routing.
#[derive(Clone)]
struct FoundBeforeRouting(Option<Rc<str>>);

#[actix_web::test]
async fn the_route_pattern_is_found_once_before_routing_and_agrees_with_the_router() {
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .wrap_fn(|req, srv| {
                let found = route_pattern(req.request());
                req.extensions_mut().insert(FoundBeforeRouting(found));
                srv.call(req)
            })
            .route("/documents", web::get().to(handler))
            .route("/documents/{id}", web::get().to(handler))
            .route("/documents/{id}/shares", web::get().to(handler))
            .default_service(web::to(handler)),
    )
    .await;
    for (uri, expected) in [
        ("/documents/42", "/documents/{id}"),
        ("/documents", "/documents"),
        ("/documents/42/shares", "/documents/{id}/shares"),
        ("/nowhere", "none"),
        ("/documents/42/other", "none"),
    ] {
        let req = TestRequest::get().uri(uri).to_request();
        let body = actix_web::test::call_and_read_body(&app, req).await;
        assert_eq!(body, expected, "{uri}");
    }
}

/// Answers the pattern, after checking that asking again reused the middleware's answer and that
/// it is the router's own choice.
async fn handler(req: HttpRequest) -> String {
    let before = req
        .extensions()
        .get::<FoundBeforeRouting>()
        .cloned()
        .map(|found| found.0);
    let now = route_pattern(&req);
    match (before, &now) {
        (Some(Some(a)), Some(b)) => assert!(Rc::ptr_eq(&a, b), "searched twice"),
        (Some(None), None) => {}
        other => panic!("the middleware and the handler disagree: {other:?}"),
    }
    assert_eq!(now.as_deref().map(str::to_owned), req.match_pattern());
    now.map_or_else(|| "none".to_owned(), |p| p.to_string())
}
