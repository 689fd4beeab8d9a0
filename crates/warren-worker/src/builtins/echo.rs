//! `echo`: succeeds with its payload as the result — the smallest possible
//! round trip through submit, dispatch, execution and report.

use serde_json::Value;

use crate::{HandlerResult, JobContext};

/// Returns the payload unchanged.
pub(crate) async fn run(_ctx: JobContext, payload: Value) -> HandlerResult {
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::builtins::testing::task;

    #[tokio::test]
    async fn result_is_the_payload() {
        let payload = json!({"a": [1, 2, {"b": null}], "s": "x"});
        let (ctx, _cancel, _reports) = JobContext::for_testing(&task("echo", 1, payload.clone()));
        assert_eq!(run(ctx, payload.clone()).await, Ok(payload));
    }
}
