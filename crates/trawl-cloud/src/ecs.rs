//! ECS tasks in `awsvpc` mode to owners.
//!
//! Each such task has its own ENI (the `ElasticNetworkInterface`
//! attachment of `DescribeTasks`), described by EC2 as
//! `arn:aws:ecs:…:attachment/…` and tagged with the service only when the
//! service propagates tags. The task says more: its `group`
//! (`service:NAME` for a service's tasks, `family:NAME` for those run
//! alone), its task definition (`…:task-definition/FAMILY:REVISION`) and
//! its cluster. So a task's interface is owned by the service, else the
//! task definition's family, in the task's cluster:
//!
//! | task | app | cluster | labels |
//! |---|---|---|---|
//! | a service's (`group` = `service:payments`) | `payments` | the cluster's name | `task_family` |
//! | run alone (`group` = `family:migrate`, or none) | the family | the cluster's name | `task_family` |
//!
//! A task holds its addresses from `RUNNING` on (and while `PENDING` or
//! `ACTIVATING` with an address attached); a stopped task is left out of
//! the poll, so its addresses are released with its interface.

use std::collections::BTreeMap;
use std::net::IpAddr;

use trawl_attrib::Workload;

/// The fields of `DescribeTasks` a task's owner is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcsTask {
    /// `taskArn`.
    pub task_arn: String,
    /// The cluster's name (from `clusterArn`).
    pub cluster: String,
    /// `group`: `service:NAME` or `family:NAME`.
    pub group: Option<String>,
    /// `taskDefinitionArn`.
    pub task_definition_arn: String,
    /// `lastStatus`.
    pub last_status: String,
    /// `availabilityZone`.
    pub availability_zone: Option<String>,
    /// The `networkInterfaceId` of its `ElasticNetworkInterface` attachment.
    pub interface_id: Option<String>,
    /// The attachment's `privateIPv4Address` and `ipv6Address`.
    pub private_ips: Vec<IpAddr>,
    /// `startedAt` (epoch seconds): dates the task's addresses exactly.
    pub started_at: Option<trawl_attrib::Secs>,
}

/// The last part of an ARN (`…/NAME`), or the whole string.
pub fn arn_name(arn: &str) -> &str {
    arn.rsplit(['/', ':']).next().unwrap_or(arn)
}

impl EcsTask {
    /// The task definition's family (`…/FAMILY:REVISION` → `FAMILY`).
    pub fn family(&self) -> String {
        let after_slash = self
            .task_definition_arn
            .rsplit('/')
            .next()
            .unwrap_or(&self.task_definition_arn);
        after_slash
            .split(':')
            .next()
            .unwrap_or(after_slash)
            .to_string()
    }

    /// The application: the service, else the family.
    pub fn app(&self) -> String {
        match self.group.as_deref().and_then(|g| g.split_once(':')) {
            Some(("service", name)) if !name.is_empty() => name.to_string(),
            _ => self.family(),
        }
    }

    /// Whether it holds its addresses.
    pub fn is_running(&self) -> bool {
        matches!(
            self.last_status.as_str(),
            "RUNNING" | "PENDING" | "ACTIVATING" | "PROVISIONING"
        ) && !self.private_ips.is_empty()
    }

    /// The workload of a task whose interface EC2 did not list.
    pub fn workload(&self, region: &str) -> Workload {
        Workload {
            app: Some(self.app()),
            cluster: Some(self.cluster.clone()),
            account: self
                .task_arn
                .split(':')
                .nth(4)
                .filter(|a| !a.is_empty())
                .map(str::to_string),
            region: Some(region.to_string()),
            az: self.availability_zone.clone(),
            kind: Some("ecs_task".into()),
            labels: BTreeMap::from([("task_family".to_string(), self.family())]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(group: Option<&str>) -> EcsTask {
        EcsTask {
            task_arn: "arn:aws:ecs:us-east-1:123456789012:task/prod/0f1e2d".into(),
            cluster: "prod".into(),
            group: group.map(str::to_string),
            task_definition_arn:
                "arn:aws:ecs:us-east-1:123456789012:task-definition/payments-api:42".into(),
            last_status: "RUNNING".into(),
            availability_zone: Some("us-east-1a".into()),
            interface_id: Some("eni-0abc".into()),
            private_ips: vec!["10.0.4.9".parse().unwrap()],
            started_at: None,
        }
    }

    #[test]
    fn a_task_is_owned_by_its_service_else_its_family() {
        assert_eq!(task(Some("service:payments")).app(), "payments");
        assert_eq!(task(Some("family:payments-api")).app(), "payments-api");
        assert_eq!(task(None).app(), "payments-api");
        assert_eq!(task(Some("service:")).app(), "payments-api");
        let w = task(Some("service:payments")).workload("us-east-1");
        assert_eq!(
            (w.kind.as_deref(), w.cluster.as_deref(), w.az.as_deref()),
            (Some("ecs_task"), Some("prod"), Some("us-east-1a"))
        );
        assert_eq!(w.labels["task_family"], "payments-api");
        assert_eq!(w.account.as_deref(), Some("123456789012"));
        assert_eq!(arn_name("arn:aws:ecs:us-east-1:1:cluster/prod"), "prod");
    }

    #[test]
    fn a_task_holds_its_addresses_until_it_stops() {
        let mut t = task(None);
        assert!(t.is_running());
        t.last_status = "STOPPED".into();
        assert!(!t.is_running());
        t.last_status = "RUNNING".into();
        t.private_ips.clear();
        assert!(!t.is_running());
    }
}
