//! Which notifiers hear an event, and that each hears it once: the routing policy of the
//! lifecycle's events, in front of the adapter that delivers them ([`Deliver`]).
//!
//! A stage's event goes to the notifiers its stage names; an event of the whole deploy (no stage)
//! to every notifier any stage names; each notifier hears only the kinds its `events` names
//! (default: all). The same event of the same stage is sent once per run, however many times
//! the lifecycle says it (a re-observed failure, a signal during a failure).

use std::collections::BTreeSet;

use futures::future::join_all;

use crate::context::{DeployContext, Event, EventKind};

use super::plan::{Plan, StagePlan};
use super::ports::Notify;

/// Delivers one event to one notifier. Never fails and never blocks the deploy for long: a
/// delivery failure is logged inside.
#[allow(async_fn_in_trait, reason = "used through generics only")]
pub trait Deliver {
    /// Sends `event` (of `stage`, none: of the whole deploy) to the notifier named `notifier`.
    async fn deliver(&self, notifier: &str, stage: Option<&StagePlan>, event: &Event);
}

/// The notifiers that hear `kind` of `stage` (none: of the whole deploy) in `plan`.
pub fn recipients(plan: &Plan, stage: Option<&StagePlan>, kind: EventKind) -> BTreeSet<String> {
    let named: BTreeSet<&String> = match stage {
        Some(stage) => stage.notify.iter().collect(),
        None => plan.stages.iter().flat_map(|s| &s.notify).collect(),
    };
    named
        .into_iter()
        .filter(|name| {
            plan.notifier_events
                .get(*name)
                .is_none_or(|kinds| kinds.contains(&kind))
        })
        .cloned()
        .collect()
}

/// The [`Notify`] port of a run: routes each event to its recipients, once, through `D`.
pub struct Routed<'a, D> {
    plan: &'a Plan,
    deliver: &'a D,
    /// (stage, kind) already sent in this run.
    sent: std::sync::Mutex<BTreeSet<(String, EventKind)>>,
}

impl<'a, D> Routed<'a, D> {
    /// Routes the events of `plan`'s run to `deliver`.
    pub fn new(plan: &'a Plan, deliver: &'a D) -> Self {
        Routed {
            plan,
            deliver,
            sent: std::sync::Mutex::new(BTreeSet::new()),
        }
    }
}

impl<D: Deliver> Notify for Routed<'_, D> {
    async fn send(
        &self,
        stage: Option<&StagePlan>,
        kind: EventKind,
        ctx: &DeployContext,
        message: &str,
    ) {
        let key = (stage.map(|s| s.name.clone()).unwrap_or_default(), kind);
        let first = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key);
        if !first {
            return;
        }
        let event = Event {
            kind,
            deploy_id: self.plan.deploy_id.clone(),
            timestamp: crate::context::now_rfc3339(),
            context: ctx.clone(),
            message: message.to_owned(),
        };
        let names = recipients(self.plan, stage, kind);
        // Notifiers are independent: one slow or failing notifier does not hold up another.
        join_all(
            names
                .iter()
                .map(|name| self.deliver.deliver(name, stage, &event)),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::lifecycle::ports::StageLive;
    use crate::lifecycle::testing::{plan, stage};

    #[derive(Default)]
    struct Delivered(Mutex<Vec<(String, Option<String>, EventKind)>>);

    impl Deliver for Delivered {
        async fn deliver(&self, notifier: &str, stage: Option<&StagePlan>, event: &Event) {
            self.0.lock().unwrap().push((
                notifier.to_owned(),
                stage.map(|s| s.name.clone()),
                event.kind,
            ));
        }
    }

    fn two_stages() -> Plan {
        let mut cny = stage("gstg-cny", "gstg", false);
        cny.notify = vec!["slack".into(), "pager".into()];
        let mut prd = stage("gprd", "gprd", false);
        prd.notify = vec!["slack".into(), "audit".into()];
        let mut plan = plan("v3.1.0", vec![cny, prd]);
        plan.notifier_events.insert(
            "pager".into(),
            BTreeSet::from([EventKind::StageFailed, EventKind::RollbackFailed]),
        );
        plan
    }

    #[test]
    fn a_stage_event_goes_to_its_stage_s_notifiers_that_hear_its_kind() {
        let plan = two_stages();
        let cny = &plan.stages[0];
        assert_eq!(
            recipients(&plan, Some(cny), EventKind::StageStarted),
            BTreeSet::from(["slack".to_owned()])
        );
        assert_eq!(
            recipients(&plan, Some(cny), EventKind::StageFailed),
            BTreeSet::from(["pager".to_owned(), "slack".to_owned()])
        );
        assert_eq!(
            recipients(&plan, Some(&plan.stages[1]), EventKind::StageFailed),
            BTreeSet::from(["audit".to_owned(), "slack".to_owned()])
        );
    }

    #[test]
    fn a_deploy_event_goes_to_every_notifier_any_stage_names_once() {
        let plan = two_stages();
        assert_eq!(
            recipients(&plan, None, EventKind::DeployFailed),
            BTreeSet::from(["audit".to_owned(), "slack".to_owned()])
        );
    }

    #[tokio::test]
    async fn each_event_of_a_stage_is_delivered_once_per_run() {
        let plan = two_stages();
        let delivered = Delivered::default();
        let routed = Routed::new(&plan, &delivered);
        let ctx = crate::lifecycle::context_for(&plan, None, None, &StageLive::default());
        let cny = &plan.stages[0];
        routed
            .send(Some(cny), EventKind::StageFailed, &ctx, "x")
            .await;
        routed
            .send(Some(cny), EventKind::StageFailed, &ctx, "again")
            .await;
        routed.send(None, EventKind::DeployFailed, &ctx, "y").await;
        let mut seen = delivered.0.into_inner().unwrap();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("audit".into(), None, EventKind::DeployFailed),
                (
                    "pager".into(),
                    Some("gstg-cny".into()),
                    EventKind::StageFailed
                ),
                ("slack".into(), None, EventKind::DeployFailed),
                (
                    "slack".into(),
                    Some("gstg-cny".into()),
                    EventKind::StageFailed
                ),
            ]
        );
    }
}
