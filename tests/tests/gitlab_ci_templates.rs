//! The GitLab CI templates of `examples/gitlab-ci/` parse as YAML and have the structure their
//! README promises: every job runs a script; every `tagship` call uses a command and flags of
//! tagship's CLI; the deploy project has one deploy job per stage, in order, each publishing its
//! JSON and Markdown reports and its dotenv report (`artifacts:reports:dotenv`), production manual
//! and `--approve`d, no `resource_group`; the service project triggers the deploy on release
//! tags; the app's auto-deploy takes the lock, checks compatibility under it and always gives
//! the lock back. Reads files only: needs no cluster.

use std::fs;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

/// Top-level keys of a `.gitlab-ci.yml` that are not jobs.
const GLOBAL_KEYWORDS: &[&str] = &[
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "spec",
];

/// The stages a pipeline has when the file does not list `stages`.
const DEFAULT_STAGES: &[&str] = &[".pre", "build", "test", "deploy", ".post"];

/// The tagship commands the templates may call, with the flags each may pass (all take a value).
/// These are the commands made for CI (`trigger`, `deploy` with its report files,
/// `check-compat`) and the `lock`, `status`, `plan` and `rollback` commands.
const COMMANDS: &[(&str, &[&str])] = &[
    (
        "trigger",
        &[
            "--version",
            "--project",
            "--ref",
            "--gitlab-url",
            "--token-env",
            "--variable",
            "--output",
        ],
    ),
    (
        "deploy",
        &[
            "--version",
            "--until",
            "--approve",
            "--json-report",
            "--markdown-report",
            "--dotenv",
            "--app-version",
        ],
    ),
    ("check-compat", &["--app-version", "--stage", "--output"]),
    (
        "lock acquire",
        &["--stage", "--holder", "--reason", "--ttl", "--wait"],
    ),
    ("lock release", &["--stage", "--holder"]),
    (
        "lock run",
        &["--stage", "--holder", "--reason", "--ttl", "--wait"],
    ),
    ("status", &["--output"]),
    ("plan", &["--version", "--until", "--approve", "--output"]),
    ("rollback", &["--stage", "--to"]),
];

/// The deploy project's stages, in order.
const STAGES: &[&str] = &["gstg-cny", "gstg", "gprd-cny", "gprd"];

// ---------------------------------------------------------------------------------------------
// The templates

/// One template file, parsed.
struct Template {
    file: String,
    doc: Mapping,
}

/// A job with `extends` resolved, as GitLab would run it.
struct Job {
    name: String,
    body: Mapping,
}

impl Template {
    fn load(path: &Path) -> Template {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading `{file}`: {e}"));
        let value: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("`{file}` is not valid YAML: {e}"));
        let Value::Mapping(doc) = value else {
            panic!("`{file}`: the top level is not a mapping");
        };
        Template { file, doc }
    }

    fn named(name: &str) -> Template {
        Template::load(&templates_dir().join(name))
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.doc.keys().filter_map(Value::as_str)
    }

    /// Visible jobs (not `.hidden`, not a global keyword), `extends` resolved.
    fn jobs(&self) -> Vec<Job> {
        self.keys()
            .filter(|k| !k.starts_with('.') && !GLOBAL_KEYWORDS.contains(k))
            .map(|name| Job {
                name: name.to_owned(),
                body: self.resolve(name, 0),
            })
            .collect()
    }

    /// Every job, hidden templates included, as written (for scripts in templates).
    fn all_job_bodies(&self) -> Vec<(String, Mapping)> {
        self.keys()
            .filter(|k| !GLOBAL_KEYWORDS.contains(k))
            .map(|name| (name.to_owned(), self.resolve(name, 0)))
            .collect()
    }

    /// GitLab's `extends`: parents first (deep-merged mappings, other values replaced), then the
    /// job's own keys.
    fn resolve(&self, name: &str, depth: usize) -> Mapping {
        assert!(
            depth < 11,
            "`{}`: `extends` nests too deep at `{name}`",
            self.file
        );
        let job = self
            .doc
            .get(name)
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("`{}`: `{name}` is not a job mapping", self.file));
        let parents: Vec<&str> = match job.get("extends") {
            None => vec![],
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Sequence(seq)) => seq.iter().filter_map(Value::as_str).collect(),
            Some(other) => panic!("`{}`: `{name}`: odd `extends`: {other:?}", self.file),
        };
        let mut merged = Mapping::new();
        for parent in parents {
            assert!(
                self.doc.contains_key(parent),
                "`{}`: `{name}` extends `{parent}`, which is not in the file",
                self.file
            );
            deep_merge(&mut merged, self.resolve(parent, depth + 1));
        }
        let mut own = job.clone();
        own.remove("extends");
        deep_merge(&mut merged, own);
        merged
    }

    /// The stages a job may name.
    fn stages(&self) -> Vec<String> {
        let mut stages: Vec<String> = match self.doc.get("stages") {
            Some(Value::Sequence(seq)) => seq
                .iter()
                .map(|s| s.as_str().expect("stage names are strings").to_owned())
                .collect(),
            None => DEFAULT_STAGES.iter().map(|s| (*s).to_owned()).collect(),
            Some(other) => panic!("`{}`: odd `stages`: {other:?}", self.file),
        };
        stages.extend([".pre".to_owned(), ".post".to_owned()]);
        stages
    }
}

fn deep_merge(base: &mut Mapping, over: Mapping) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => deep_merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl Job {
    fn get(&self, key: &str) -> Option<&Value> {
        self.body.get(key)
    }

    /// The lines of `script`, `before_script` and `after_script`.
    fn script_lines(&self) -> Vec<String> {
        script_lines(&self.body)
    }

    fn invocations(&self) -> Vec<Invocation> {
        self.script_lines()
            .iter()
            .flat_map(|line| invocations(line))
            .collect()
    }

    fn invocation(&self, command: &str) -> Invocation {
        let found: Vec<Invocation> = self
            .invocations()
            .into_iter()
            .filter(|i| i.command == command)
            .collect();
        assert!(
            !found.is_empty(),
            "job `{}` never runs `tagship {command}`",
            self.name
        );
        found.into_iter().next().unwrap()
    }

    /// `when: manual`, on the job or on every rule that lets it run.
    fn is_manual(&self) -> bool {
        if let Some(rules) = self.get("rules").and_then(Value::as_sequence) {
            let running: Vec<&Value> = rules
                .iter()
                .filter(|r| r.get("when").and_then(Value::as_str) != Some("never"))
                .collect();
            !running.is_empty()
                && running
                    .iter()
                    .all(|r| r.get("when").and_then(Value::as_str) == Some("manual"))
        } else {
            self.get("when").and_then(Value::as_str) == Some("manual")
        }
    }

    /// The jobs named in `needs` (plain names or `{job: NAME}`).
    fn needs(&self) -> Vec<String> {
        self.get("needs")
            .and_then(Value::as_sequence)
            .map(|seq| {
                seq.iter()
                    .map(|n| match n {
                        Value::String(s) => s.clone(),
                        Value::Mapping(m) => m
                            .get("job")
                            .and_then(Value::as_str)
                            .unwrap_or_else(|| panic!("job `{}`: a need has no `job`", self.name))
                            .to_owned(),
                        other => panic!("job `{}`: odd need {other:?}", self.name),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn stage(&self) -> String {
        self.get("stage")
            .and_then(Value::as_str)
            .unwrap_or("test")
            .to_owned()
    }

    fn path(&self, keys: &[&str]) -> Option<&Value> {
        let mut value = self.get(keys[0])?;
        for key in &keys[1..] {
            value = value.get(*key)?;
        }
        Some(value)
    }
}

/// The entries of a `script`-like value: a string, or a list of them (nested lists flattened).
fn flatten_script(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(seq) => seq.iter().for_each(|v| flatten_script(v, out)),
        _ => {}
    }
}

fn script_lines(body: &Mapping) -> Vec<String> {
    let mut lines = Vec::new();
    for key in ["before_script", "script", "after_script"] {
        if let Some(value) = body.get(key) {
            flatten_script(value, &mut lines);
        }
    }
    lines
}

fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gitlab-ci")
}

fn all_templates() -> Vec<Template> {
    let mut paths: Vec<PathBuf> = fs::read_dir(templates_dir())
        .expect("examples/gitlab-ci exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Template::load(p)).collect()
}

// ---------------------------------------------------------------------------------------------
// Shell: just enough to find `tagship` calls in a script

/// One `tagship` call: the command (`deploy`, `lock acquire`, ...) and its `--flag value` pairs.
#[derive(Debug)]
struct Invocation {
    command: String,
    flags: Vec<(String, String)>,
    /// The command after `--` (`tagship lock run … -- CMD…`), word by word.
    wrapped: Vec<String>,
    /// The `tagship` calls of the wrapped command, when it is `sh -c SCRIPT`.
    nested: Vec<Invocation>,
    /// The whole call, for messages.
    text: String,
}

impl Invocation {
    fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag_values(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(f, _)| f == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Shell words of a script entry: quotes removed, `\`-newline joined, `;` `|` `&` `&&` `||` and
/// newlines as words of their own (a newline is `;`). Enough for CI scripts, not a shell.
fn shell_words(script: &str) -> Vec<String> {
    let script = script.replace("\\\n", " ");
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(q),
                    }
                }
            }
            ';' | '|' | '&' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                let mut op = if c == '\n' {
                    ";".to_owned()
                } else {
                    c.to_string()
                };
                if (c == '|' || c == '&') && chars.peek() == Some(&c) {
                    chars.next();
                    op.push(c);
                }
                words.push(op);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn is_operator(word: &str) -> bool {
    matches!(word, ";" | "|" | "&" | "&&" | "||")
}

/// Words after which a new command starts.
fn starts_command(previous: Option<&str>) -> bool {
    match previous {
        None => true,
        Some(w) => is_operator(w) || matches!(w, "then" | "else" | "do" | "!" | "if" | "while"),
    }
}

/// The `tagship` calls of one script entry. Panics on a `tagship` it cannot read (inside `$(...)`
/// or backticks, or not at the start of a command), so none slips past the checks.
fn invocations(script: &str) -> Vec<Invocation> {
    let words = shell_words(script);
    let mut found = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let previous = i.checked_sub(1).map(|p| words[p].as_str());
        if word == "tagship" {
            assert!(
                starts_command(previous),
                "`tagship` in an odd place (after `{}`) in:\n{script}",
                previous.unwrap_or_default()
            );
            let end = words[i..]
                .iter()
                .position(|w| is_operator(w))
                .map_or(words.len(), |p| i + p);
            found.push(parse_invocation(&words[i + 1..end], script));
            i = end;
        } else {
            assert!(
                !word.contains("(tagship") && !word.contains("`tagship"),
                "call tagship at the start of a command, not inside `{word}`:\n{script}"
            );
            i += 1;
        }
    }
    found
}

fn parse_invocation(args: &[String], script: &str) -> Invocation {
    let text = format!("tagship {}", args.join(" "));
    let (command, rest) = match args {
        [lock, action, rest @ ..] if lock == "lock" => (format!("lock {action}"), rest),
        [command, rest @ ..] => (command.clone(), rest),
        [] => panic!("`tagship` without a command in:\n{script}"),
    };
    let mut flags = Vec::new();
    let mut wrapped = Vec::new();
    let mut nested = Vec::new();
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            // `lock run … -- CMD…`: the command run under the lock; in `sh -c SCRIPT`, its own
            // tagship calls are read too.
            wrapped = rest.by_ref().cloned().collect();
            if let [shell, option, script, ..] = wrapped.as_slice()
                && shell == "sh"
                && option.starts_with('-')
                && option.contains('c')
            {
                nested = invocations(script);
            }
            break;
        }
        if arg == "$@" {
            // "$@": flags built by the script (app-auto-deploy's `--stage` per stage).
            continue;
        }
        let Some(flag) = arg.strip_prefix("--") else {
            panic!("`{text}`: unexpected argument `{arg}` (every argument is a `--flag value`)");
        };
        let (name, value) = if let Some((name, value)) = flag.split_once('=') {
            (format!("--{name}"), value.to_owned())
        } else {
            let value = rest
                .next()
                .unwrap_or_else(|| panic!("`{text}`: `{arg}` has no value"));
            (format!("--{flag}"), value.clone())
        };
        flags.push((name, value));
    }
    Invocation {
        command,
        flags,
        wrapped,
        nested,
        text,
    }
}

// ---------------------------------------------------------------------------------------------
// Every template

#[test]
fn the_three_templates_are_there() {
    let files: Vec<String> = all_templates().into_iter().map(|t| t.file).collect();
    for expected in [
        "app-auto-deploy.gitlab-ci.yml",
        "deploy-project.gitlab-ci.yml",
        "service-project.gitlab-ci.yml",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "examples/gitlab-ci/{expected} is missing (found {files:?})"
        );
    }
}

#[test]
fn every_job_of_every_template_runs_a_script() {
    for template in all_templates() {
        let jobs = template.jobs();
        assert!(!jobs.is_empty(), "`{}` has no job", template.file);
        for job in jobs {
            let mut lines = Vec::new();
            if let Some(script) = job.get("script") {
                flatten_script(script, &mut lines);
            }
            assert!(
                lines.iter().any(|l| !l.trim().is_empty()),
                "`{}`: job `{}` has no `script`",
                template.file,
                job.name
            );
        }
    }
}

#[test]
fn every_tagship_call_uses_a_known_command_and_its_flags() {
    let mut calls = 0;
    for template in all_templates() {
        for (job, body) in template.all_job_bodies() {
            for line in script_lines(&body) {
                for call in invocations(&line) {
                    calls += 1;
                    let Some((_, allowed)) = COMMANDS.iter().find(|(c, _)| *c == call.command)
                    else {
                        panic!(
                            "`{}`: job `{job}` runs `tagship {}`, not one of {:?}",
                            template.file,
                            call.command,
                            COMMANDS.iter().map(|(c, _)| *c).collect::<Vec<_>>()
                        );
                    };
                    for (flag, _) in &call.flags {
                        assert!(
                            allowed.contains(&flag.as_str()),
                            "`{}`: job `{job}`: `tagship {}` has no flag `{flag}` (it has \
                             {allowed:?}):\n{}",
                            template.file,
                            call.command,
                            call.text
                        );
                    }
                }
            }
        }
    }
    assert!(
        calls >= 10,
        "only {calls} tagship calls found: is the parser blind?"
    );
}

#[test]
fn every_job_that_runs_tagship_uses_the_tagship_image() {
    for template in all_templates() {
        for job in template.jobs() {
            if job.invocations().is_empty() {
                continue;
            }
            let image = match job.get("image") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Mapping(m)) => m
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                _ => String::new(),
            };
            assert!(
                image.contains("TAGSHIP_IMAGE"),
                "`{}`: job `{}` runs tagship in image `{image}`",
                template.file,
                job.name
            );
        }
    }
}

#[test]
fn every_job_names_a_stage_of_its_pipeline_and_needs_jobs_that_exist() {
    for template in all_templates() {
        let stages = template.stages();
        let names: Vec<String> = template.jobs().into_iter().map(|j| j.name).collect();
        for job in template.jobs() {
            assert!(
                stages.contains(&job.stage()),
                "`{}`: job `{}` is in stage `{}`, not one of {stages:?}",
                template.file,
                job.name,
                job.stage()
            );
            for need in job.needs() {
                assert!(
                    names.contains(&need),
                    "`{}`: job `{}` needs `{need}`, which is not a job of the file",
                    template.file,
                    job.name
                );
            }
        }
    }
}

#[test]
fn no_job_uses_a_resource_group_because_the_lease_lock_serialises_deploys() {
    for template in all_templates() {
        for (job, body) in template.all_job_bodies() {
            assert!(
                !body.contains_key("resource_group"),
                "`{}`: job `{job}` has a `resource_group`",
                template.file
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The deploy project

/// The deploy jobs, in stage order, with their `tagship deploy` call.
fn deploy_jobs(template: &Template) -> Vec<(Job, Invocation)> {
    let stages = template.stages();
    let mut jobs: Vec<(Job, Invocation)> = template
        .jobs()
        .into_iter()
        .filter_map(|job| {
            let call = job
                .invocations()
                .into_iter()
                .find(|i| i.command == "deploy")?;
            Some((job, call))
        })
        .collect();
    jobs.sort_by_key(|(job, _)| stages.iter().position(|s| *s == job.stage()));
    jobs
}

#[test]
fn the_deploy_project_has_one_deploy_job_per_stage_in_order_each_until_its_stage() {
    let template = Template::named("deploy-project.gitlab-ci.yml");
    let jobs = deploy_jobs(&template);
    let untils: Vec<&str> = jobs
        .iter()
        .map(|(job, call)| {
            call.flag("--until")
                .unwrap_or_else(|| panic!("job `{}`: `{}` has no --until", job.name, call.text))
        })
        .collect();
    assert_eq!(untils, STAGES, "deploy jobs' --until, in stage order");
    for (job, call) in &jobs {
        assert_eq!(
            call.flag("--version"),
            Some("$TAGSHIP_VERSION"),
            "job `{}`: {}",
            job.name,
            call.text
        );
    }
    for pair in jobs.windows(2) {
        let (previous, next) = (&pair[0].0, &pair[1].0);
        assert!(
            next.needs().contains(&previous.name),
            "job `{}` does not need `{}`",
            next.name,
            previous.name
        );
    }
}

#[test]
fn the_production_deploy_job_is_manual_and_approves_gprd_and_only_it() {
    let template = Template::named("deploy-project.gitlab-ci.yml");
    for (job, call) in deploy_jobs(&template) {
        let production = call.flag("--until") == Some("gprd");
        if production {
            assert!(job.is_manual(), "job `{}` is not `when: manual`", job.name);
            assert_eq!(
                call.flag_values("--approve"),
                ["gprd"],
                "job `{}`: {}",
                job.name,
                call.text
            );
            assert_ne!(
                job.get("allow_failure").and_then(Value::as_bool),
                Some(true),
                "job `{}`: a manual production job must block the pipeline",
                job.name
            );
        } else {
            assert!(!job.is_manual(), "job `{}` is manual", job.name);
            assert!(
                call.flag("--approve").is_none(),
                "job `{}` approves a manual stage: {}",
                job.name,
                call.text
            );
        }
    }
}

#[test]
fn every_deploy_job_publishes_its_reports_and_the_dotenv_report() {
    let template = Template::named("deploy-project.gitlab-ci.yml");
    for (job, call) in deploy_jobs(&template) {
        let flag = |name: &str| {
            call.flag(name)
                .unwrap_or_else(|| panic!("job `{}`: `{}` has no {name}", job.name, call.text))
        };
        let dotenv = job
            .path(&["artifacts", "reports", "dotenv"])
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("job `{}` has no artifacts:reports:dotenv", job.name));
        assert_eq!(dotenv, flag("--dotenv"), "job `{}`", job.name);
        let paths: Vec<&str> = job
            .path(&["artifacts", "paths"])
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for report in [flag("--json-report"), flag("--markdown-report")] {
            assert!(
                paths.contains(&report),
                "job `{}`: `{report}` is not in artifacts:paths {paths:?}",
                job.name
            );
        }
        assert_eq!(
            job.path(&["artifacts", "when"]).and_then(Value::as_str),
            Some("always"),
            "job `{}`: a failed deploy's reports must be kept too",
            job.name
        );
    }
}

#[test]
fn the_deploy_project_has_a_plan_job_and_a_manual_rollback_job() {
    let template = Template::named("deploy-project.gitlab-ci.yml");
    let jobs = template.jobs();
    let plan = jobs
        .iter()
        .find(|j| j.invocations().iter().any(|i| i.command == "plan"))
        .expect("a job running `tagship plan`");
    assert_eq!(
        plan.invocation("plan").flag("--version"),
        Some("$TAGSHIP_VERSION")
    );
    let first_deploy = &deploy_jobs(&template)[0].0;
    assert!(
        first_deploy.needs().contains(&plan.name),
        "the first deploy job waits for `{}`",
        plan.name
    );
    let rollbacks: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.invocations().iter().any(|i| i.command == "rollback"))
        .collect();
    assert!(!rollbacks.is_empty(), "no job runs `tagship rollback`");
    for job in rollbacks {
        assert!(job.is_manual(), "job `{}` is not manual", job.name);
        for call in job.invocations() {
            assert!(call.flag("--stage").is_some(), "{}", call.text);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The service project

#[test]
fn the_service_project_triggers_the_deploy_project_on_release_tags() {
    let template = Template::named("service-project.gitlab-ci.yml");
    let job = template
        .jobs()
        .into_iter()
        .find(|j| j.invocations().iter().any(|i| i.command == "trigger"))
        .expect("a job running `tagship trigger`");
    let call = job.invocation("trigger");
    for flag in ["--version", "--project", "--ref"] {
        assert!(call.flag(flag).is_some(), "`{}` has no {flag}", call.text);
    }
    assert!(
        call.flag("--version").unwrap().contains("CI_COMMIT_TAG"),
        "the version comes from the tag: {}",
        call.text
    );
    let rules = serde_norway::to_string(job.get("rules").expect("the trigger job has rules"))
        .expect("rules serialise");
    assert!(
        rules.contains("$CI_COMMIT_TAG"),
        "the trigger job runs on tags only: {rules}"
    );
    assert!(
        !job.script_lines().concat().contains("glptt-"),
        "a trigger token is written into the template"
    );
}

// ---------------------------------------------------------------------------------------------
// The app's auto-deploy

#[test]
fn the_app_auto_deploy_checks_compat_and_deploys_under_one_renewed_lock() {
    let template = Template::named("app-auto-deploy.gitlab-ci.yml");
    let calls: Vec<(String, Invocation)> = template
        .all_job_bodies()
        .into_iter()
        .flat_map(|(name, body)| {
            script_lines(&body)
                .iter()
                .flat_map(|line| invocations(line))
                .map(|call| (name.clone(), call))
                .collect::<Vec<_>>()
        })
        .collect();
    let (job, run) = calls
        .iter()
        .find(|(_, call)| call.command == "lock run")
        .expect("a job runs `tagship lock run`");
    for flag in ["--stage", "--holder", "--reason", "--ttl", "--wait"] {
        assert!(run.flag(flag).is_some(), "`{}` has no {flag}", run.text);
    }
    // Under the lock: the compat check first, then the app's deploy, stopping at a failure.
    assert_eq!(
        run.wrapped.get(..2),
        Some(&["sh".to_owned(), "-ec".to_owned()][..]),
        "`{job}`: the wrapped command stops at the first failure: {:?}",
        run.wrapped
    );
    let script = &run.wrapped[2];
    let compat = run
        .nested
        .first()
        .unwrap_or_else(|| panic!("`{job}`: {script}"));
    assert_eq!(compat.command, "check-compat", "{script}");
    assert!(compat.flag("--app-version").is_some(), "{script}");
    let deploy_at = script
        .find("$TAGSHIP_APP_DEPLOY_COMMAND")
        .unwrap_or_else(|| panic!("`{job}` never runs the app's deploy: {script}"));
    assert!(
        script.find("tagship check-compat") < Some(deploy_at),
        "the check comes before the deploy: {script}"
    );
    // Nobody holds a lock that nobody renews any more.
    assert!(
        calls.iter().all(|(_, c)| c.command != "lock acquire"),
        "a lock acquired by one job and released by another is not renewed"
    );
    let variables = template
        .doc
        .get("variables")
        .and_then(Value::as_mapping)
        .expect("variables");
    let ttl = variables
        .get("TAGSHIP_LOCK_TTL")
        .and_then(Value::as_str)
        .expect("TAGSHIP_LOCK_TTL");
    assert!(
        ["30s", "1m", "2m", "3m", "5m"].contains(&ttl),
        "the lock is renewed: a short TTL frees it soon after a dead job, not `{ttl}`"
    );
    // The app version as an app pipeline has it: its auto-deploy version, else its commit.
    let lines = script_lines(&template.resolve(job, 0)).join("\n");
    assert!(
        lines.contains("AUTO_DEPLOY_VERSION") && lines.contains("$CI_COMMIT_SHA"),
        "{lines}"
    );
    // And a job ready to use runs it.
    assert!(
        template
            .jobs()
            .iter()
            .any(|j| j.invocations().iter().any(|c| c.command == "lock run")),
        "no visible job runs it"
    );
}

// ---------------------------------------------------------------------------------------------
// The shell reader itself

#[test]
fn shell_words_join_continuations_and_keep_quoted_text_whole() {
    assert_eq!(
        shell_words("tagship deploy --version \"$V\" \\\n  --until 'gprd cny'; echo ok&&x"),
        [
            "tagship",
            "deploy",
            "--version",
            "$V",
            "--until",
            "gprd cny",
            ";",
            "echo",
            "ok",
            "&&",
            "x"
        ]
    );
}

#[test]
fn invocations_are_found_after_operators_and_keywords_with_their_flags() {
    let calls = invocations(
        "if [ -n \"$TO\" ]; then\n  tagship rollback --stage gprd --to=\"$TO\"\nelse tagship lock release --stage gstg --holder me || true\nfi",
    );
    let summary: Vec<(String, Vec<(String, String)>)> =
        calls.into_iter().map(|c| (c.command, c.flags)).collect();
    assert_eq!(
        summary,
        [
            (
                "rollback".to_owned(),
                vec![
                    ("--stage".to_owned(), "gprd".to_owned()),
                    ("--to".to_owned(), "$TO".to_owned())
                ]
            ),
            (
                "lock release".to_owned(),
                vec![
                    ("--stage".to_owned(), "gstg".to_owned()),
                    ("--holder".to_owned(), "me".to_owned())
                ]
            ),
        ]
    );
}

#[test]
#[should_panic(expected = "call tagship at the start of a command")]
fn a_tagship_call_hidden_in_a_substitution_is_refused() {
    invocations("url=$(tagship trigger --version v1 --project p --ref main)");
}
