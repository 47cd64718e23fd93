//! Query strings of the listing routes: `limit` and an opaque cursor, refused as a problem.

use super::problem::{FieldError, Problem};
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::StatusCode;

pub fn bad_query(errors: Vec<FieldError>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "bad-query",
        "Invalid query parameters",
        "see errors",
    )
    .with_errors(errors)
}

/// The parsed query, or a problem naming what was wrong with it.
#[allow(clippy::result_large_err)] // `Problem` is the API's one error type
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(v)| v).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Invalid query parameters",
            e.body_text(),
        )
    })
}

/// `limit`: 1 to 500, 50 when absent.
pub fn limit(raw: Option<&str>, errors: &mut Vec<FieldError>) -> i64 {
    match raw.map(str::parse::<i64>) {
        None => 50,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => {
            errors.push(Problem::field("limit", "must be an integer from 1 to 500"));
            50
        }
    }
}
