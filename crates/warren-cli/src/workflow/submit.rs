//! `warren workflow submit`: a definition file, a template file
//! instantiated here with `--var`, or a stored template (`--template`)
//! instantiated by the coordinator. Definitions and templates are checked
//! locally first, then submitted over HTTP; the id is printed on stdout.

use std::process::ExitCode;

use serde_json::json;
use warren_client::{ApiClient, TemplateRef, WorkflowSource, WorkflowSubmission};

use super::file::{parse_vars, read_document, Document};
use super::{show, watch, SubmitArgs};
use crate::context::Context;
use crate::failure::CliError;
use crate::output::{print_json, print_text};

/// Runs `warren workflow submit`.
pub(crate) async fn run(ctx: &Context, args: SubmitArgs) -> Result<ExitCode, CliError> {
    let api = ctx.api()?;
    let mut submission = build(&api, &args).await?;
    if args.id.is_some() {
        submission.id = args.id;
    }
    let id = *submission.id.get_or_insert_with(uuid::Uuid::now_v7);
    let created = api.submit_workflow(&submission).await?;
    if !created.created {
        eprintln!("workflow {id} already exists; nothing new was created");
    }
    if !args.wait {
        if ctx.json() {
            print_json(&json!({ "id": id, "created": created.created }))?;
        } else {
            print_text(&id.to_string())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{id}");
    let workflow = watch::follow(&api, id).await?;
    if ctx.json() {
        print_json(&workflow)?;
    } else {
        print_text(&show::render(&workflow, chrono::Utc::now()))?;
    }
    Ok(watch::exit_code(&workflow))
}

/// The submission `args` describe.
async fn build(api: &ApiClient, args: &SubmitArgs) -> Result<WorkflowSubmission, CliError> {
    let invalid = |e: &dyn std::fmt::Display| CliError::general(e.to_string());
    if let Some(name) = &args.template {
        // Read the template first so each --var gets its declared type.
        let template = api.get_template(name, args.version).await?;
        let variables = parse_vars(&args.vars, Some(&template))?;
        return Ok(WorkflowSubmission {
            id: None,
            source: WorkflowSource::Template(TemplateRef {
                template: name.clone(),
                version: Some(template.version),
                variables,
            }),
        });
    }
    let path = args
        .file
        .as_deref()
        .ok_or_else(|| CliError::general("give a FILE or --template NAME"))?;
    match read_document(path)? {
        Document::Workflow(value) => {
            if !args.vars.is_empty() {
                return Err(CliError::general(format!(
                    "{}: --var applies to templates, and this file is a workflow definition",
                    path.display()
                )));
            }
            let submission = WorkflowSubmission::try_from(value)
                .map_err(|e| CliError::general(format!("{}: {e}", path.display())))?;
            if let WorkflowSource::Spec(spec) = &submission.source {
                spec.validate().map_err(|e| invalid(&e))?;
            }
            Ok(submission)
        }
        Document::Template(template) => {
            template.validate().map_err(|e| invalid(&e))?;
            let variables = parse_vars(&args.vars, Some(&template))?;
            let spec = template.instantiate(&variables).map_err(|e| invalid(&e))?;
            Ok(WorkflowSubmission {
                id: None,
                source: WorkflowSource::Spec(spec),
            })
        }
    }
}
