//! The reconcile engine against a real ovs-vswitchd: a flow the switch rejects is traced back to
//! its object, that object's flows are left out, and the rest of the batch is committed.

use flowlib::conn::{ConnOptions, Connection};
use flowlib::wire::{Action, Flow, Instructions, Match};
use kovs_agent::reconcile::flows::sync::BridgeSync;
use kovs_tests::{OvsSandbox, SandboxOptions};
use pipelines::tables::{cookie, Stage};
use pipelines::{CompactFlow, FlowSet};

const GOOD: u64 = 0x111;
const BAD: u64 = 0x222;

fn flow(table: u8, reg: u32, object: u64, ins: Instructions) -> CompactFlow {
    let mut m = Match::new();
    m.reg(0, reg);
    let f = Flow::new(table, 100, m, ins).with_cookie(cookie(Stage::L2, 0, object));
    CompactFlow::new(0, &f, &mut Vec::new())
}

#[test]
fn a_rejected_flow_names_its_object_and_the_rest_is_installed() {
    let sb = OvsSandbox::start(SandboxOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = Connection::connect(&sb.mgmt_target("br-int"), ConnOptions::default())
            .await
            .unwrap();
        let mut desired = FlowSet::new();
        for r in 0..5 {
            desired.insert(flow(20, r, GOOD, Instructions::apply([Action::output(1)])));
        }
        // Object BAD: one valid flow and one that jumps backwards (OFPBIC_BAD_TABLE_ID).
        desired.insert(flow(20, 100, BAD, Instructions::apply([Action::output(2)])));
        desired.insert(flow(
            20,
            101,
            BAD,
            Instructions {
                goto_table: Some(5),
                ..Instructions::default()
            },
        ));
        let mut sync = BridgeSync::new(0, "br-int");
        let report = sync.sync_full(&conn, desired.clone()).await.unwrap();
        assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
        assert_eq!(report.failed[0].object, BAD);
        assert!(
            report.failed[0].error.contains("BAD_TABLE_ID"),
            "{}",
            report.failed[0].error
        );
        assert!(
            report.failed[0].flow.contains("reg0=0x65"),
            "{}",
            report.failed[0].flow
        );
        assert!(sync.failed_objects.contains(&BAD));
        // GOOD's flows are in, none of BAD's (its valid flow is left out with it).
        let dumped = sb.dump_flows("br-int").unwrap();
        assert_eq!(dumped.len(), 5, "{dumped:?}");
        assert!(
            dumped
                .iter()
                .all(|l| l.contains("cookie=0x6b4000000000011")),
            "{dumped:?}"
        );
        // What the full sync found is reported (the switch was empty).
        assert_eq!(report.installed_before, 0);

        // Resyncs (as after an agent restart) send only the difference from what the dump finds:
        // a kovs flow nobody wants is deleted, missing ones added, a changed one modified, and
        // nothing when the switch already holds the desired set.
        desired.retain(|f| f.cookie() & 0xfff == GOOD);
        let stray = flow(20, 4242, GOOD, Instructions::apply([Action::output(1)]));
        let mut extra = FlowSet::new();
        extra.insert(stray);
        let r = sync.sync_full(&conn, extra).await.unwrap();
        assert_eq!((r.adds, r.modifies, r.deletes), (1, 0, 5), "{r:?}");
        let r = sync.sync_full(&conn, desired.clone()).await.unwrap();
        assert_eq!(r.installed_before, 1);
        assert_eq!((r.adds, r.modifies, r.deletes), (5, 0, 1), "{r:?}");
        desired.insert(flow(20, 4, GOOD, Instructions::apply([Action::output(3)])));
        let r = sync.sync_full(&conn, desired.clone()).await.unwrap();
        assert_eq!(r.installed_before, 5);
        assert_eq!((r.adds, r.modifies, r.deletes), (0, 1, 0), "{r:?}");
        let r = sync.sync_full(&conn, desired.clone()).await.unwrap();
        assert_eq!((r.adds, r.modifies, r.deletes), (0, 0, 0), "{r:?}");
        let dumped = sb.dump_flows("br-int").unwrap();
        assert!(dumped.iter().any(|l| l.contains("output:3")), "{dumped:?}");
    });
}
