//! Tests of `[notify]`: secrets only from the environment and never shown,
//! unknown event types and environments at their place with a suggestion.

use std::env::VarError;
use std::path::Path;

use super::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SLACK: &str = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX";

fn vars(name: &str) -> Result<String, VarError> {
    match name {
        "HOOK_SECRET" => Ok(SECRET.to_owned()),
        "SLACK_URL" => Ok(SLACK.to_owned()),
        "SHORT" => Ok("whsec_c2hvcnQ=".to_owned()),
        _ => Err(VarError::NotPresent),
    }
}

fn source(notify: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./hello\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n\n[environment.staging]\nlisten = \"127.0.0.1:8081\"\n\n{notify}"
    )
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_with_env(text, Path::new("cutover.toml"), &vars)
}

/// The problems of `notify`, rendered, with the (line, column) of each.
fn problems(notify: &str) -> (String, Vec<(usize, usize)>) {
    let err = match parse(&source(notify)) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(err) => err,
    };
    let places = err.problems().iter().map(|p| p.line_column()).collect();
    // One line per problem part, without the drawing's wrapping.
    let flat = render(&err)
        .replace(['│', '·'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (flat, places)
}

#[test]
fn webhooks_and_slack_resolve_with_their_defaults() {
    let config = parse(&source(
        "[[notify.webhook]]\nurl = \"https://hooks.example.com/x\"\nsecret = \"${HOOK_SECRET}\"\n\n[[notify.webhook]]\nurl = \"https://other.example.com/x\"\nsecret = \"${HOOK_SECRET}\"\nevents = [\"deployment.succeeded\", \"deployment.rolled_back\", \"deployment.succeeded\"]\nenvironments = [\"production\"]\n\n[[notify.slack]]\nurl = \"${SLACK_URL}\"\n",
    ))
    .expect("valid");
    let hooks = &config.notify.webhooks;
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0].events, EventType::ALL);
    assert!(hooks[0].environments.is_empty());
    assert_eq!(hooks[0].secret.expose(), SECRET);
    assert_eq!(
        hooks[1].events,
        [
            EventType::DeploymentSucceeded,
            EventType::DeploymentRolledBack
        ]
    );
    assert_eq!(hooks[1].environments, ["production"]);
    assert_eq!(config.notify.slack[0].url.expose(), SLACK);
    assert_eq!(config.notify.slack[0].events, EventType::SLACK_DEFAULT);
    // What `cutover check --json` prints shows neither secret.
    let shown = serde_json::to_string(&config).expect("json");
    assert!(
        !shown.contains(SECRET) && !shown.contains("MfKQ9r8"),
        "{shown}"
    );
    assert!(!shown.contains("XXXXXXXXXXXXXXXX"), "{shown}");
    assert!(shown.contains("https://hooks.example.com/x"), "{shown}");
}

#[test]
fn an_unknown_event_type_is_reported_where_it_is_with_a_suggestion() {
    let (rendered, places) = problems(
        "[[notify.webhook]]\nurl = \"https://hooks.example.com/x\"\nsecret = \"${HOOK_SECRET}\"\nevents = [\"deployment.started\", \"deployment.succeded\"]\n",
    );
    assert_eq!(places, [(16, 33)], "{rendered}");
    assert!(
        rendered.contains("unknown event type \"deployment.succeded\""),
        "{rendered}"
    );
    assert!(
        rendered.contains("did you mean \"deployment.succeeded\""),
        "{rendered}"
    );
}

#[test]
fn an_unknown_environment_is_reported_with_a_suggestion() {
    let (rendered, places) =
        problems("[[notify.slack]]\nurl = \"${SLACK_URL}\"\nenvironments = [\"prod\"]\n");
    assert_eq!(places, [(15, 17)], "{rendered}");
    assert!(
        rendered.contains("did you mean \"production\""),
        "{rendered}"
    );
}

#[test]
fn secrets_written_in_the_file_are_refused_without_being_shown_again() {
    let (rendered, places) = problems(&format!(
        "[[notify.webhook]]\nurl = \"https://hooks.example.com/x\"\nsecret = \"{SECRET}\"\n\n[[notify.slack]]\nurl = \"{SLACK}\"\n"
    ));
    assert_eq!(places, [(15, 10), (18, 7)], "{rendered}");
    assert!(
        rendered.contains("`notify.webhook.secret` is a secret written in the file"),
        "{rendered}"
    );
    assert!(
        rendered.contains("secret = \"${CUTOVER_WEBHOOK_SECRET}\""),
        "{rendered}"
    );
    assert!(
        rendered.contains("`notify.slack.url` is a secret written in the file"),
        "{rendered}"
    );
}

#[test]
fn a_secret_that_is_not_whsec_is_refused_without_its_value() {
    let (rendered, _) = problems(
        "[[notify.webhook]]\nurl = \"https://hooks.example.com/x\"\nsecret = \"${SHORT}\"\n",
    );
    assert!(
        rendered.contains("its key is 5 bytes; Standard Webhooks keys are 24 to 64 bytes"),
        "{rendered}"
    );
    assert!(!rendered.contains("c2hvcnQ"), "{rendered}");
    let (rendered, _) = problems("[[notify.webhook]]\nurl = \"https://hooks.example.com/x\"\n");
    assert!(
        rendered.contains("[[notify.webhook]] has no `secret`"),
        "{rendered}"
    );
}

#[test]
fn a_webhook_url_must_be_http_or_https() {
    let (rendered, places) = problems(
        "[[notify.webhook]]\nurl = \"ftp://hooks.example.com/x\"\nsecret = \"${HOOK_SECRET}\"\n",
    );
    assert_eq!(places, [(14, 7)], "{rendered}");
    assert!(
        rendered.contains("`notify.webhook.url` is not an http(s) URL"),
        "{rendered}"
    );
}

#[test]
fn the_schema_lists_the_event_types() {
    let schema = json_schema();
    let items = &schema["$defs"]["Webhook"]["properties"]["events"]["items"]["enum"];
    assert_eq!(
        items.as_array().map(Vec::len),
        Some(EventType::ALL.len()),
        "{items}"
    );
    assert!(schema["properties"]["notify"].is_object());
}
