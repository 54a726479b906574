//! The campus platform end to end: WeChat login, email verification through the outbox,
//! catalogues, applications and their approval, organisations, owners, managers, follows,
//! feedback; DRF-shaped errors; the permission matrix; races in one and two processes;
//! erasure of a user; restarts.

use std::time::Duration;

use serde_json::{json, Value};

use crate::erasure::{assert_absent, dump};
use crate::helpers::{eventually, spawn_app_tweaked, spawn_app_with, FakeWechat, Reply, TestApp};

/// A server whose campus write limit is off (each test makes more writes a minute than a
/// person would); `campus_writes_are_limited_per_user` turns it on.
pub(crate) async fn spawn() -> TestApp {
    spawn_app_with(|c| c.campus_write_limit = 0).await
}

/// A superuser (made in-process, as `ensemble admin create` does) and their token.
pub(crate) async fn superuser(app: &TestApp) -> String {
    ensemble::campus::register(
        &app.app.campus,
        "Jessica",
        "boss@campus.edu",
        "s3cret-pass",
        &runtime::bus::Actor::operator(),
    )
    .await
    .unwrap();
    let reply = app
        .post(
            "/adminLogIn/",
            None,
            json!({"username": "Jessica", "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["token"].as_str().unwrap().to_string()
}

/// Log in as WeChat user `who` (openid `openid-<who>`); the whole answer.
pub(crate) async fn wx_login(app: &TestApp, who: &str) -> Value {
    let reply = app
        .post(
            "/login/",
            None,
            json!({"code": format!("code-{who}"), "userInfo": {"nickName": who, "avatarUrl": format!("https://img/{who}")}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

pub(crate) struct User {
    pub id: i64,
    pub token: String,
}

pub(crate) async fn user(app: &TestApp, who: &str) -> User {
    let body = wx_login(app, who).await;
    User {
        id: body["id"].as_i64().unwrap(),
        token: body["token"].as_str().unwrap().to_string(),
    }
}

async fn rebuild(app: &TestApp) {
    runtime::runner::rebuild(&app.app.rt.tx_pool, &app.rebuildable(), &|_, _| {})
        .await
        .unwrap();
}

async fn events(app: &TestApp) -> i64 {
    app.scalar("SELECT count(*) FROM events").await
}

pub(crate) async fn block(app: &TestApp, admin: &str, name: &str) -> i64 {
    let reply = app
        .post("/blocks/", Some(admin), json!({"name": name}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

/// An application by `user`, approved; the organisation's id.
pub(crate) async fn organisation(
    app: &TestApp,
    admin: &str,
    owner: &User,
    name: &str,
    block: i64,
) -> i64 {
    let reply = app
        .post(
            "/organizations/applications/",
            Some(&owner.token),
            json!({"name": name, "description": "理由", "user": owner.id, "block": block}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let application = reply.body["id"].as_i64().unwrap();
    let reply = app
        .put(
            &format!("/organizations/applications/verifications/{application}/"),
            admin,
            json!({"status": 1}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let found = app
        .get(&format!("/organizations/?org={name}"), &owner.token)
        .await;
    found.body["results"]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_newcomer_logs_in_verifies_an_email_founds_an_organisation_and_others_follow_it() {
    let app = spawn().await;
    let smtp = app.smtp.as_ref().unwrap();
    // First login registers; the campus's own WeChat credentials are used.
    let first = wx_login(&app, "wzk").await;
    assert_eq!(first["status"], 0);
    assert_eq!(first["userExist"], 0);
    assert_eq!(first["email"], "");
    assert_eq!(first["name"], "wzk");
    assert_eq!(first["avatar"], "https://img/wzk");
    let seen = app.wechat.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen["appid"], "campus-appid");
    assert_eq!(seen["secret"], "campus-secret");
    let again = app
        .post(
            "/userLogin/",
            None,
            json!({"code": "code-wzk", "userInfo": {}}),
        )
        .await;
    assert_eq!(again.body["userExist"], 1);
    assert_eq!(again.body["id"], first["id"]);
    let wzk = User {
        id: first["id"].as_i64().unwrap(),
        token: first["token"].as_str().unwrap().to_string(),
    };
    // WeChat refusing the code.
    let refused = app
        .post("/login/", None, json!({"code": "bad-code", "userInfo": {}}))
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body,
        json!({"status": 1, "errcode": 40029, "msg": "invalid code"})
    );

    // Email verification: the code arrives by mail, from the outbox.
    let sent = app
        .post(
            "/sendVerify/",
            Some(&wzk.token),
            json!({"email": "wzk@buaa.edu.cn"}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body, json!({"status": 0, "msg": "Email send"}));
    assert!(eventually(Duration::from_secs(10), || async { smtp.count() == 1 }).await);
    let mail = smtp.messages.lock().unwrap()[0].clone();
    assert!(mail.contains("wzk@buaa.edu.cn"));
    let code = mail
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a 6-digit code in the mail")
        .to_string();
    // The code is in no event in clear.
    let logged: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM events WHERE payload::text LIKE '%{code}%'"
        ))
        .await;
    assert_eq!(logged, 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let tried = app
        .post(
            "/verify/",
            Some(&wzk.token),
            json!({"verifyCode": wrong, "email": "wzk@buaa.edu.cn", "id": wzk.id}),
        )
        .await;
    assert_eq!(tried.status, 400);
    assert_eq!(tried.body, json!({"status": 1, "msg": "Invalid Code"}));
    let verified = app
        .post(
            "/verify/",
            Some(&wzk.token),
            json!({"verifyCode": code, "email": "wzk@buaa.edu.cn", "id": wzk.id}),
        )
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.body, json!({"status": 0, "msg": "Valid Code"}));
    assert_eq!(wx_login(&app, "wzk").await["email"], "wzk@buaa.edu.cn");

    // A superuser makes a block; the user applies; the name is held while pending.
    let admin = superuser(&app).await;
    let boya = block(&app, &admin, "博雅").await;
    let applied = app
        .post(
            "/organizations/applications/",
            Some(&wzk.token),
            json!({"name": "test组织", "description": "我的申请理由", "user": wzk.id, "block": boya}),
        )
        .await;
    assert_eq!(applied.status, 202, "{}", applied.body);
    assert_eq!(applied.body["status"], 0);
    assert_eq!(applied.body["user"], wzk.id);
    assert_eq!(applied.body["block"], boya);
    let pub_time = applied.body["pub_time"].as_str().unwrap();
    assert_eq!(
        pub_time.len(),
        "2021-04-15T11:26:32.396852".len(),
        "{pub_time}"
    );
    let application = applied.body["id"].as_i64().unwrap();
    let other = user(&app, "jessie").await;
    let clash = app
        .post(
            "/organizations/applications/",
            Some(&other.token),
            json!({"name": "test组织", "description": "x", "user": other.id, "block": boya}),
        )
        .await;
    assert_eq!(clash.status, 400);
    assert_eq!(clash.body, json!({"name": ["已经存在该名称组织的申请"]}));
    let mine = app
        .get(
            &format!("/users/organizations/applications/{}/", wzk.id),
            &wzk.token,
        )
        .await;
    assert_eq!(mine.body[0]["user"]["name"], "wzk");
    assert_eq!(mine.body[0]["block"]["name"], "博雅");
    assert_eq!(mine.body[0]["pub_time"], pub_time);

    // Approval founds it, owned and managed by the applicant; twice is the documented error.
    let verdict = format!("/organizations/applications/verifications/{application}/");
    let approved = app.put(&verdict, &admin, json!({"status": 1})).await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body, json!({"status": 1}));
    let twice = app.put(&verdict, &admin, json!({"status": 2})).await;
    assert_eq!(twice.status, 400);
    assert_eq!(twice.body, json!({"detail": ["该组织申请已审批。"]}));
    let bad = app.put(&verdict, &admin, json!({"status": 5})).await;
    assert_eq!(bad.body, json!({"status": ["“5” 不是合法选项。"]}));
    // Auditors follow it: the organisation's stream is the application's.
    let record = app
        .get(&format!("/audit/Organization/{application}/"), &admin)
        .await;
    assert_eq!(record.status, 200, "{}", record.body);
    assert!(
        record.body.to_string().contains("\"Active\""),
        "{}",
        record.body
    );
    let history = app
        .get(
            &format!("/audit/Organization/{application}/history/"),
            &admin,
        )
        .await;
    assert_eq!(history.body["count"], 2, "{}", history.body);
    let found = app.get("/organizations/?org=test组织", &other.token).await;
    assert_eq!(found.body["status"], 0);
    let org = found.body["results"].clone();
    assert_eq!(org["owner"]["id"], wzk.id);
    assert_eq!(org["block"], json!({"id": boya, "name": "博雅"}));
    let org_id = org["id"].as_i64().unwrap();
    let taken = app
        .post(
            "/organizations/applications/",
            Some(&other.token),
            json!({"name": "test组织", "description": "x", "user": other.id, "block": boya}),
        )
        .await;
    assert_eq!(taken.body, json!({"name": ["已经存在该名称的组织。"]}));
    let managers = app
        .get(&format!("/organizations/managers/{org_id}/"), &other.token)
        .await;
    assert_eq!(managers.body.as_array().unwrap().len(), 1);
    assert_eq!(managers.body[0]["person"]["id"], wzk.id);
    let unknown = app.get("/organizations/?org=nope", &other.token).await;
    assert_eq!(
        unknown.body,
        json!({"status": 1, "msg": "invalid org name"})
    );

    // The owner edits it and appoints a manager; someone else follows it.
    let edited = app
        .put(
            &format!("/organizations/{org_id}/"),
            &wzk.token,
            json!({"name": "新组织", "description": "我是描述", "avatar": "https://img/org"}),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.body["name"], "新组织");
    assert_eq!(edited.body["description"], "我是描述");
    let appointed = app
        .post(
            "/organizations/managers/",
            Some(&wzk.token),
            json!({"org": org_id, "person": other.id}),
        )
        .await;
    assert_eq!(appointed.status, 201, "{}", appointed.body);
    assert_eq!(appointed.body["org"], org_id);
    assert_eq!(appointed.body["person"], other.id);
    let again = app
        .post(
            "/organizations/managers/",
            Some(&wzk.token),
            json!({"org": org_id, "person": other.id}),
        )
        .await;
    assert_eq!(
        again.body,
        json!({"non_field_errors": ["该用户已是此组织管理员。"]})
    );
    let envelope = app
        .get(
            &format!("/users/organizations/?id={}&user_view=True", other.id),
            &other.token,
        )
        .await;
    assert_eq!(envelope.body["results"][0]["org"]["name"], "新组织");
    assert_eq!(envelope.body["results"][0]["person"]["id"], other.id);
    let by_name = app
        .get("/organizations/managers/?org=新组织", &other.token)
        .await;
    assert_eq!(by_name.body["results"].as_array().unwrap().len(), 2);
    let fan = user(&app, "fan").await;
    let followed = app
        .post(
            "/users/followed_organizations/",
            Some(&fan.token),
            json!({"org": org_id, "person": fan.id}),
        )
        .await;
    assert_eq!(followed.status, 201, "{}", followed.body);
    let twice = app
        .post(
            "/users/followed_organizations/",
            Some(&fan.token),
            json!({"org": org_id, "person": fan.id}),
        )
        .await;
    assert_eq!(twice.body, json!({"non_field_errors": ["已关注该组织。"]}));
    let nothing = app
        .post(
            "/users/followed_organizations/",
            Some(&fan.token),
            json!({"org": 999, "person": fan.id}),
        )
        .await;
    assert_eq!(
        nothing.body,
        json!({"org": ["无效主键 “999” － 对象不存在。"]})
    );
    let list = app
        .get(
            &format!("/users/followed_organizations/{}/", fan.id),
            &fan.token,
        )
        .await;
    assert_eq!(list.body[0]["org"]["id"], org_id);

    // A profile edit shows wherever the user is nested.
    let renamed = app
        .put(
            &format!("/users/{}/", wzk.id),
            &wzk.token,
            json!({"name": "王", "sign": "苟利国家生死以"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["sign"], "苟利国家生死以");
    let list = app
        .get(
            &format!("/users/followed_organizations/{}/", fan.id),
            &fan.token,
        )
        .await;
    assert_eq!(list.body[0]["org"]["owner"]["name"], "王");
    assert_eq!(list.body[0]["org"]["owner"]["sign"], "苟利国家生死以");
    // Others do not see the owner's WeChat account; the owner and superusers do.
    assert_eq!(list.body[0]["org"]["owner"]["openid"], Value::Null);
    let as_admin = app.get(&format!("/users/{}/", wzk.id), &admin).await;
    assert_eq!(as_admin.body["openid"], "openid-wzk");

    // Ownership handed over: the new owner is a manager, the former one no longer owns it.
    let handed = app
        .post(
            &format!("/organizations/owner/{org_id}/"),
            Some(&wzk.token),
            json!({"owner": fan.id}),
        )
        .await;
    assert_eq!(handed.status, 200, "{}", handed.body);
    assert_eq!(handed.body, json!({"owner": fan.id}));
    let refused = app
        .put(
            &format!("/organizations/{org_id}/"),
            &wzk.token,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(refused.status, 403);
    let managed = app
        .get(
            &format!("/users/managed_organizations/{}/", fan.id),
            &fan.token,
        )
        .await;
    assert_eq!(managed.body[0]["org"]["owner"]["id"], fan.id);

    // Feedback reaches the superusers.
    let feedback = app
        .post(
            "/feedbacks/",
            Some(&fan.token),
            json!({"feedback": "我们BUAA真是太厉害了！", "contact": "微信wzk_1015"}),
        )
        .await;
    assert_eq!(feedback.status, 201);
    assert_eq!(
        feedback.body,
        json!({"success": true, "msg": "upload feedback succeed"})
    );
    let read = app.get("/feedbacks/", &admin).await;
    assert_eq!(read.body[0]["feedback"], "我们BUAA真是太厉害了！");

    // Deleting the organisation leaves no follow or manager behind; its name is free again.
    let deleted = app
        .delete(&format!("/organizations/{org_id}/"), &fan.token)
        .await;
    assert_eq!(deleted.status, 204);
    for table in ["campus_follows", "campus_managers", "campus_organizations"] {
        assert_eq!(
            app.scalar(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    let again = app
        .post(
            "/organizations/applications/",
            Some(&other.token),
            json!({"name": "新组织", "description": "x", "user": other.id, "block": boya}),
        )
        .await;
    assert_eq!(again.status, 202, "{}", again.body);

    // Every change is an event with its actor.
    let actors: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT metadata->>'actor' FROM events WHERE aggregate_type IN \
         ('CampusUser', 'Organization', 'Block', 'Feedback') ORDER BY 1",
    )
    .fetch_all(&app.app.rt.pool)
    .await
    .unwrap();
    assert!(
        actors.iter().all(|a| a.starts_with("campus-")),
        "{actors:?}"
    );
}

#[tokio::test]
async fn field_errors_come_in_the_drf_shape_with_every_wrong_field() {
    let app = spawn().await;
    let admin = superuser(&app).await;
    let u = user(&app, "u").await;
    let missing = app
        .post(
            "/organizations/applications/",
            Some(&u.token),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.body,
        json!({"description": ["该字段是必填项。"], "user": ["该字段是必填项。"], "block": ["该字段是必填项。"]})
    );
    let blank = app
        .post(
            "/organizations/applications/",
            Some(&u.token),
            json!({"name": " ", "description": "", "user": u.id, "block": 1}),
        )
        .await;
    assert_eq!(blank.body["name"], json!(["该字段不能为空。"]));
    assert_eq!(blank.body["description"], json!(["该字段不能为空。"]));
    assert_eq!(blank.body["block"], json!(["无效主键 “1” － 对象不存在。"]));
    // Blocks and categories: taken, unchanged, missing.
    let b = block(&app, &admin, "社团").await;
    let dup = app
        .post("/blocks/", Some(&admin), json!({"name": "社团"}))
        .await;
    assert_eq!(
        dup.body,
        json!({"name": ["具有 版块名称 的 block 已存在。"]})
    );
    let same = app
        .put(&format!("/blocks/{b}/"), &admin, json!({"name": "社团"}))
        .await;
    assert_eq!(same.body, json!({"block": ["板块名称重复"]}));
    let none = app.put(&format!("/blocks/{b}/"), &admin, json!({})).await;
    assert_eq!(none.body, json!({"name": ["该字段是必填项。"]}));
    let gone = app.put("/blocks/99/", &admin, json!({"name": "x"})).await;
    assert_eq!(
        (gone.status, gone.body["detail"].clone()),
        (404, json!("未找到。"))
    );
    let not_an_id = app.delete("/blocks/abc/", &admin).await;
    assert_eq!(not_an_id.status, 404);
    let c = app
        .post(
            "/activities/categories/",
            Some(&admin),
            json!({"name": "体育"}),
        )
        .await;
    assert_eq!(c.status, 201);
    let c_id = c.body["id"].as_i64().unwrap();
    let dup = app
        .post(
            "/activities/categories/",
            Some(&admin),
            json!({"name": "体育"}),
        )
        .await;
    assert_eq!(
        dup.body,
        json!({"name": ["具有 分类名称 的 category 已存在。"]})
    );
    let same = app
        .put(
            &format!("/activities/categories/{c_id}/"),
            &admin,
            json!({"name": "体育"}),
        )
        .await;
    assert_eq!(same.body, json!({"category": ["分类名称重复"]}));
    // Renaming frees the old name.
    let renamed = app
        .put(
            &format!("/activities/categories/{c_id}/"),
            &admin,
            json!({"name": "文艺"}),
        )
        .await;
    assert_eq!(renamed.body, json!({"id": c_id, "name": "文艺"}));
    let reused = app
        .post(
            "/activities/categories/",
            Some(&admin),
            json!({"name": "体育"}),
        )
        .await;
    assert_eq!(reused.status, 201);
    // Addresses: six decimals, unique names and places.
    let a = app
        .post(
            "/activities/addresses/",
            Some(&u.token),
            json!({"name": "篮球场", "longitude": "123.123", "latitude": "45.5"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["longitude"], "123.123000");
    assert_eq!(a.body["latitude"], "45.500000");
    let place = app
        .post(
            "/activities/addresses/",
            Some(&u.token),
            json!({"name": "足球场", "longitude": "123.1230", "latitude": 45.5}),
        )
        .await;
    assert_eq!(place.body, json!({"address": ["地点重复。"]}));
    let name = app
        .post(
            "/activities/addresses/",
            Some(&u.token),
            json!({"name": "篮球场", "longitude": "1", "latitude": "2"}),
        )
        .await;
    assert_eq!(
        name.body,
        json!({"name": ["具有 地址名称 的 address 已存在。"]})
    );
    let nonsense = app
        .post(
            "/activities/addresses/",
            Some(&u.token),
            json!({"name": "x", "longitude": "east", "latitude": "1e400"}),
        )
        .await;
    assert_eq!(nonsense.status, 400);
    assert!(nonsense.body["longitude"].is_array() && nonsense.body["latitude"].is_array());
    // Forms work like JSON.
    let form = app
        .http
        .post(format!("{}/activities/categories/", app.address))
        .header("Authorization", format!("JWT {admin}"))
        .form(&[("name", "晚会")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 201);
    // Lists page with limit/offset.
    let page: Value = app
        .get("/activities/categories/?limit=2&offset=1", &u.token)
        .await
        .body;
    assert_eq!(page["count"], 3);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], Value::Null);
    assert!(page["previous"]
        .as_str()
        .unwrap()
        .ends_with("/activities/categories?limit=2"));
    let first: Value = app
        .get("/activities/categories/?limit=1", &u.token)
        .await
        .body;
    assert!(first["next"]
        .as_str()
        .unwrap()
        .ends_with("limit=1&offset=1"));
    let plain = app.get("/activities/categories/", &u.token).await.body;
    assert_eq!(plain.as_array().unwrap().len(), 3);
    let far = app
        .get(
            &format!("/activities/categories/?limit=1000&offset={}", i64::MAX),
            &u.token,
        )
        .await;
    assert_eq!(far.body["results"], json!([]));
    assert_eq!(far.body["next"], Value::Null);
    let bad = app.get("/blocks/?limit=x", &u.token).await;
    assert_eq!(bad.status, 400);
}

/// Every write endpoint, each caller that must be refused, and proof that nothing changed.
#[tokio::test]
async fn every_write_refuses_the_callers_it_must_and_changes_nothing() {
    let app = spawn().await;
    let t = app.with_roster().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let stranger = user(&app, "stranger").await;
    let manager = user(&app, "manager").await;
    let b = block(&app, &admin, "博雅").await;
    let org = organisation(&app, &admin, &owner, "组织", b).await;
    // A manager who is not the owner may not do what only the owner may.
    let appointed = app
        .post(
            "/organizations/managers/",
            Some(&owner.token),
            json!({"org": org, "person": manager.id}),
        )
        .await;
    assert_eq!(appointed.status, 201);
    let c = app
        .post(
            "/activities/categories/",
            Some(&admin),
            json!({"name": "体育"}),
        )
        .await;
    let c = c.body["id"].as_i64().unwrap();
    let a = app
        .post(
            "/activities/addresses/",
            Some(&admin),
            json!({"name": "场", "longitude": "1", "latitude": "1"}),
        )
        .await;
    let a = a.body["id"].as_i64().unwrap();
    let pending = app
        .post(
            "/organizations/applications/",
            Some(&owner.token),
            json!({"name": "待审", "description": "x", "user": owner.id, "block": b}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();

    use reqwest::Method;
    let (get, post, put, delete) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
    let _ = get;
    // (method, path, body, the callers refused with 403)
    let superuser_only = ["stranger", "owner", "manager"];
    let owner_only = ["stranger", "manager"];
    let self_only = ["stranger", "manager"];
    let writes: Vec<(Method, String, Value, &[&str])> = vec![
        (
            post.clone(),
            "/blocks/".into(),
            json!({"name": "新"}),
            &superuser_only,
        ),
        (
            put.clone(),
            format!("/blocks/{b}/"),
            json!({"name": "新"}),
            &superuser_only,
        ),
        (
            delete.clone(),
            format!("/blocks/{b}/"),
            Value::Null,
            &superuser_only,
        ),
        (
            post.clone(),
            "/activities/categories/".into(),
            json!({"name": "新"}),
            &superuser_only,
        ),
        (
            put.clone(),
            format!("/activities/categories/{c}/"),
            json!({"name": "新"}),
            &superuser_only,
        ),
        (
            delete.clone(),
            format!("/activities/categories/{c}/"),
            Value::Null,
            &superuser_only,
        ),
        (
            delete.clone(),
            format!("/activities/addresses/{a}/"),
            Value::Null,
            &superuser_only,
        ),
        (
            put.clone(),
            format!("/organizations/applications/verifications/{pending}/"),
            json!({"status": 1}),
            &superuser_only,
        ),
        (
            delete.clone(),
            format!("/organizations/applications/{pending}/"),
            Value::Null,
            &self_only,
        ),
        (
            put.clone(),
            format!("/organizations/{org}/"),
            json!({"name": "改"}),
            &owner_only,
        ),
        (
            delete.clone(),
            format!("/organizations/{org}/"),
            Value::Null,
            &owner_only,
        ),
        (
            post.clone(),
            format!("/organizations/owner/{org}/"),
            json!({"owner": 1}),
            &owner_only,
        ),
        (
            post.clone(),
            "/organizations/managers/".into(),
            json!({"org": org, "person": 1}),
            &owner_only,
        ),
        (
            delete.clone(),
            format!("/organizations/managers/?user={}&org={org}", owner.id),
            Value::Null,
            &owner_only,
        ),
        (
            post.clone(),
            "/organizations/applications/".into(),
            json!({"name": "n", "description": "d", "user": owner.id, "block": b}),
            &self_only,
        ),
        (
            post.clone(),
            "/users/followed_organizations/".into(),
            json!({"org": org, "person": owner.id}),
            &self_only,
        ),
        (
            delete.clone(),
            format!("/users/followed_organizations/?user={}&org={org}", owner.id),
            Value::Null,
            &self_only,
        ),
        (
            put.clone(),
            format!("/users/{}/", owner.id),
            json!({"name": "改"}),
            &self_only,
        ),
        (
            delete.clone(),
            format!("/users/{}/", owner.id),
            Value::Null,
            &self_only,
        ),
        (
            post.clone(),
            "/verify/".into(),
            json!({"verifyCode": "123456", "email": "a@b.cn", "id": owner.id}),
            &self_only,
        ),
        (
            post.clone(),
            "/register/".into(),
            json!({"username": "x", "password": "pppppppp", "email": "a@b.cn"}),
            &superuser_only,
        ),
        (
            post.clone(),
            "/sendVerify/".into(),
            json!({"email": "a@b.cn"}),
            &[],
        ),
        (
            post.clone(),
            "/feedbacks/".into(),
            json!({"feedback": "f"}),
            &[],
        ),
        (
            post.clone(),
            "/activities/addresses/".into(),
            json!({"name": "n", "longitude": "2", "latitude": "2"}),
            &[],
        ),
    ];
    let before = events(&app).await;
    for (method, path, body, refused) in &writes {
        let send = |token: Option<String>| {
            let app = &app;
            let method = method.clone();
            let body = body.clone();
            async move {
                let body = (!body.is_null()).then_some(body);
                app.request(method, path, token.as_deref(), body).await
            }
        };
        // No token, an orchestra token, a bad token: 401.
        for token in [None, Some(t.david.clone()), Some("not-a-token".to_string())] {
            let Reply { status, body } = send(token.clone()).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert!(body["detail"].is_string(), "{method} {path}: {body}");
        }
        for who in refused.iter() {
            let token = match *who {
                "owner" => owner.token.clone(),
                "manager" => manager.token.clone(),
                _ => stranger.token.clone(),
            };
            let Reply { status, body } = send(Some(token)).await;
            assert_eq!(status, 403, "{method} {path} as {who}: {body}");
            assert_eq!(body, json!({"detail": "您没有执行该操作的权限。"}));
        }
    }
    // Superusers are not users: what only a user does is refused them.
    for path in ["/sendVerify/", "/feedbacks/"] {
        let reply = app
            .post(
                path,
                Some(&admin),
                json!({"email": "a@b.cn", "feedback": "f"}),
            )
            .await;
        assert_eq!(reply.status, 403, "{path}");
    }
    assert_eq!(
        events(&app).await,
        before,
        "a refused write changed something"
    );
    // And a campus token is refused by the orchestra.
    let absence = app.get("/absence/", &owner.token).await;
    assert_eq!(absence.status, 401);
    let manager = app.get("/manager/", &admin).await;
    assert_eq!(manager.status, 401);
}

#[tokio::test]
async fn of_simultaneous_requests_for_one_name_exactly_one_succeeds_also_across_two_processes() {
    let first = spawn().await;
    let second = spawn_app_tweaked(
        first.database_url.clone(),
        FakeWechat::start().await,
        first.smtp_port,
        Some(std::sync::Arc::new(|c: &mut ensemble::Config| {
            c.campus_write_limit = 0
        })),
    )
    .await;
    let admin = superuser(&first).await;
    let users = [user(&first, "a").await, user(&second, "b").await];
    let b = block(&first, &admin, "博雅").await;
    // Blocks: 16 at once over both servers.
    let attempts = (0..16).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.post("/blocks/", Some(&admin), json!({"name": "同名"}))
    });
    let replies = futures::future::join_all(attempts).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        created,
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        replies
            .iter()
            .filter(|r| r.status != 201)
            .all(|r| r.status == 400
                && r.body == json!({"name": ["具有 版块名称 的 block 已存在。"]}))
    );
    // Applications for one organisation name, by two users on two servers.
    let attempts = (0..12).map(|i| {
        let (app, u) = if i % 2 == 0 {
            (&first, &users[0])
        } else {
            (&second, &users[1])
        };
        app.post(
            "/organizations/applications/",
            Some(&u.token),
            json!({"name": "同名组织", "description": "d", "user": u.id, "block": b}),
        )
    });
    let replies = futures::future::join_all(attempts).await;
    assert_eq!(replies.iter().filter(|r| r.status == 202).count(), 1);
    assert!(replies.iter().all(|r| r.status == 202 || r.status == 400));
    // Follows of one pair, and appointments of one pair.
    let org = organisation(&first, &admin, &users[0], "组织", b).await;
    let attempts = (0..10).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.post(
            "/users/followed_organizations/",
            Some(&users[1].token),
            json!({"org": org, "person": users[1].id}),
        )
    });
    let replies = futures::future::join_all(attempts).await;
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1);
    let attempts = (0..10).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.post(
            "/organizations/managers/",
            Some(&users[0].token),
            json!({"org": org, "person": users[1].id}),
        )
    });
    let replies = futures::future::join_all(attempts).await;
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1);
    assert_eq!(first.scalar("SELECT count(*) FROM campus_follows").await, 1);
    assert_eq!(
        first.scalar("SELECT count(*) FROM campus_managers").await,
        2
    );
    // Approvals racing each other: one founding.
    let pending = first
        .post(
            "/organizations/applications/",
            Some(&users[1].token),
            json!({"name": "又一个", "description": "d", "user": users[1].id, "block": b}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let path = format!("/organizations/applications/verifications/{pending}/");
    let attempts = (0..8).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.put(&path, &admin, json!({"status": 1}))
    });
    let replies = futures::future::join_all(attempts).await;
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 1);
    assert_eq!(
        first
            .scalar("SELECT count(*) FROM campus_organizations")
            .await,
        2
    );
    // Blocks deleted on one server while applications to them arrive on the other: none is
    // recorded after its block's deletion.
    for round in 0..6 {
        let doomed = block(&first, &admin, &format!("临时{round}")).await;
        let path = format!("/blocks/{doomed}/");
        let deletion = first.delete(&path, &admin);
        let application = second.post(
            "/organizations/applications/",
            Some(&users[1].token),
            json!({"name": format!("赶在{round}"), "description": "d", "user": users[1].id, "block": doomed}),
        );
        let (deleted, applied) = futures::join!(deletion, application);
        assert_eq!(deleted.status, 204);
        assert!(matches!(applied.status, 202 | 400), "{}", applied.body);
    }
    let late = first
        .scalar(
            "SELECT count(*) FROM events a JOIN events d \
             ON d.aggregate_type = 'Block' AND d.event_type = 'BlockDeleted' \
             AND a.event_type = 'ApplicationSubmitted' \
             AND (a.payload->'ApplicationSubmitted'->>'block') = d.aggregate_id \
             WHERE a.position > d.position",
        )
        .await;
    assert_eq!(
        late, 0,
        "an application recorded after its block's deletion"
    );
}

#[tokio::test]
async fn a_deleted_user_leaves_no_personal_data_and_can_come_back_as_someone_new() {
    let app = spawn().await;
    let admin = superuser(&app).await;
    let smtp = app.smtp.as_ref().unwrap();
    let gone = user(&app, "vanishing-nick").await;
    let fan = user(&app, "fan").await;
    // Their email, a profile, an organisation they own, a follow, feedback, an application.
    app.post(
        "/sendVerify/",
        Some(&gone.token),
        json!({"email": "vanish@buaa.edu.cn"}),
    )
    .await;
    assert!(eventually(Duration::from_secs(10), || async { smtp.count() == 1 }).await);
    let mail = smtp.messages.lock().unwrap()[0].clone();
    let code = mail
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_string();
    let ok = app
        .post(
            "/verify/",
            Some(&gone.token),
            json!({"verifyCode": code, "email": "vanish@buaa.edu.cn", "id": gone.id}),
        )
        .await;
    assert_eq!(ok.status, 200);
    app.put(
        &format!("/users/{}/", gone.id),
        &gone.token,
        json!({"name": "Secret Name", "sign": "secret sign"}),
    )
    .await;
    let b = block(&app, &admin, "博雅").await;
    let org = organisation(&app, &admin, &gone, "Their Club", b).await;
    app.post(
        "/users/followed_organizations/",
        Some(&gone.token),
        json!({"org": org, "person": gone.id}),
    )
    .await;
    app.post(
        "/users/followed_organizations/",
        Some(&fan.token),
        json!({"org": org, "person": fan.id}),
    )
    .await;
    app.post(
        "/feedbacks/",
        Some(&gone.token),
        json!({"feedback": "secret feedback", "contact": "secret contact"}),
    )
    .await;
    app.post(
        "/organizations/applications/",
        Some(&gone.token),
        json!({"name": "Pending Club", "description": "secret reason", "user": gone.id, "block": b}),
    )
    .await;

    let deleted = app
        .delete(&format!("/users/{}/", gone.id), &gone.token)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    app.app.rt.catch_up().await.unwrap();
    let everything = dump(&app);
    assert_absent(
        &everything,
        &[
            "vanishing-nick",
            "openid-vanishing-nick",
            "https://img/vanishing-nick",
            "vanish@buaa.edu.cn",
            "Secret Name",
            "secret sign",
            "secret feedback",
            "secret contact",
            "secret reason",
            &code,
        ],
    );
    // Their token is dead; the organisation stays with a placeholder owner; follows go.
    assert_eq!(app.get("/blocks/", &gone.token).await.status, 401);
    assert_eq!(
        app.get(&format!("/users/{}/", gone.id), &fan.token)
            .await
            .status,
        404
    );
    let club = app.get("/organizations/?org=Their Club", &fan.token).await;
    assert_eq!(club.body["results"]["owner"]["name"], "已注销用户");
    assert_eq!(club.body["results"]["owner"]["email"], Value::Null);
    assert_eq!(app.scalar("SELECT count(*) FROM campus_follows").await, 1);
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) FROM campus_managers WHERE user_id = {}",
            gone.id
        ))
        .await,
        0
    );
    // Their pending application is withdrawn (in the background): its name is free.
    let withdrawn = format!(
        "SELECT count(*) FROM campus_applications WHERE user_id = {} AND status = 0 AND NOT deleted",
        gone.id
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.scalar(&withdrawn).await == 0
        })
        .await
    );
    let reused = app
        .post(
            "/organizations/applications/",
            Some(&fan.token),
            json!({"name": "Pending Club", "description": "x", "user": fan.id, "block": b}),
        )
        .await;
    assert_eq!(reused.status, 202, "{}", reused.body);
    // A superuser hands the organisation to someone alive.
    let handed = app
        .post(
            &format!("/organizations/owner/{org}/"),
            Some(&admin),
            json!({"owner": fan.id}),
        )
        .await;
    assert_eq!(handed.status, 200);
    // A rebuild gives the same placeholder rows.
    let before: Vec<Value> = app.get("/organizations/", &admin).await.body["results"]
        .as_array()
        .unwrap()
        .clone();
    rebuild(&app).await;
    let after: Vec<Value> = app.get("/organizations/", &admin).await.body["results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(before, after);
    let feedback = app.get("/feedbacks/", &admin).await;
    assert_eq!(feedback.body[0]["feedback"], "(erased)");
    // The audit views show the placeholder too.
    let audit = app
        .get(
            &format!(
                "/audit/events/?aggregate_type=CampusUser&aggregate_id={}",
                gone.id
            ),
            &admin,
        )
        .await;
    let registered = &audit.body["events"][0]["payload"]["UserRegistered"];
    assert_eq!(registered["name"], "(erased)", "{}", audit.body);
    let state = app
        .get(&format!("/audit/CampusUser/{}/", gone.id), &admin)
        .await;
    assert_eq!(state.status, 200, "{}", state.body);
    // The same WeChat account comes back as a new user.
    let back = wx_login(&app, "vanishing-nick").await;
    assert_eq!(back["userExist"], 0);
    assert_ne!(back["id"].as_i64().unwrap(), gone.id);
    assert_eq!(back["email"], "");
}

#[tokio::test]
async fn verification_codes_are_limited_expire_after_five_wrong_tries_and_bad_addresses_mail_nothing(
) {
    let app = spawn().await;
    let smtp = app.smtp.as_ref().unwrap();
    let u = user(&app, "u").await;
    for bad in ["not-an-address", "a@b.cn\r\nBcc: x@y.cn", "", "a@b"] {
        let reply = app
            .post("/sendVerify/", Some(&u.token), json!({"email": bad}))
            .await;
        assert_eq!(reply.status, 400, "{bad:?}");
        assert_eq!(reply.body, json!({"status": 1, "msg": "Invalid email"}));
    }
    let sent = app
        .post(
            "/sendVerify/",
            Some(&u.token),
            json!({"email": "u@buaa.edu.cn"}),
        )
        .await;
    assert_eq!(sent.status, 200);
    let again = app
        .post(
            "/sendVerify/",
            Some(&u.token),
            json!({"email": "u@buaa.edu.cn"}),
        )
        .await;
    assert_eq!(again.status, 429);
    assert!(eventually(Duration::from_secs(10), || async { smtp.count() == 1 }).await);
    let mail = smtp.messages.lock().unwrap()[0].clone();
    let code = mail
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_string();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let reply = app
            .post(
                "/verify/",
                Some(&u.token),
                json!({"verifyCode": wrong, "email": "u@buaa.edu.cn", "id": u.id}),
            )
            .await;
        assert_eq!(reply.status, 400);
    }
    // Burnt: even the right code is refused now.
    let late = app
        .post(
            "/verify/",
            Some(&u.token),
            json!({"verifyCode": code, "email": "u@buaa.edu.cn", "id": u.id}),
        )
        .await;
    assert_eq!(late.body, json!({"status": 1, "msg": "Invalid Code"}));
    // Someone else's id is refused.
    let other = app
        .post(
            "/verify/",
            Some(&u.token),
            json!({"verifyCode": code, "email": "u@buaa.edu.cn", "id": u.id + 1}),
        )
        .await;
    assert_eq!(other.status, 403);
    // One account cannot mail many addresses either: three requests a minute (the refused
    // retry above counted), so one of these four goes out.
    let statuses: Vec<u16> = futures::future::join_all((0..4).map(|i| {
        app.post(
            "/sendVerify/",
            Some(&u.token),
            json!({"email": format!("other{i}@buaa.edu.cn")}),
        )
    }))
    .await
    .iter()
    .map(|r| r.status)
    .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    // Only the good addresses were ever mailed.
    assert!(eventually(Duration::from_secs(10), || async { smtp.count() == 2 }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.count(), 2);
}

#[tokio::test]
async fn a_restart_keeps_every_campus_state_and_a_rebuild_gives_the_same_rows() {
    let app = spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let fan = user(&app, "fan").await;
    let b = block(&app, &admin, "志愿").await;
    let org = organisation(&app, &admin, &owner, "组织", b).await;
    app.post(
        "/users/followed_organizations/",
        Some(&fan.token),
        json!({"org": org, "person": fan.id}),
    )
    .await;
    app.post(
        "/organizations/managers/",
        Some(&owner.token),
        json!({"org": org, "person": fan.id}),
    )
    .await;
    let paths = [
        "/organizations/".to_string(),
        "/organizations/managers/".to_string(),
        format!("/users/followed_organizations/{}/", fan.id),
        "/organizations/applications/".to_string(),
        "/users/".to_string(),
        "/blocks/".to_string(),
    ];
    let mut before = Vec::new();
    for path in &paths {
        before.push(app.get(path, &admin).await.body);
    }
    rebuild(&app).await;
    for (path, expected) in paths.iter().zip(&before) {
        assert_eq!(
            &app.get(path, &admin).await.body,
            expected,
            "rebuilt {path}"
        );
    }
    let app = app.restart().await;
    for (path, expected) in paths.iter().zip(&before) {
        assert_eq!(
            &app.get(path, &admin).await.body,
            expected,
            "restarted {path}"
        );
    }
    // Commands keep working on the states the log holds.
    let again = app
        .post(
            "/users/followed_organizations/",
            Some(&fan.token),
            json!({"org": org, "person": fan.id}),
        )
        .await;
    assert_eq!(again.body, json!({"non_field_errors": ["已关注该组织。"]}));
}

/// Every list query the campus serves, EXPLAIN ANALYZEd on 10,000 organisations and 100,000 follows
/// (rows written straight into the read models), must read its rows through indexes: no
/// sequential scan of a table that grows with the platform. A page (`limit` 20) is planned;
/// an unpaged list of everything reads everything by nature. Run by `./scripts/bench-campus`
/// (it prints the plans), not by CI.
#[tokio::test]
#[ignore]
async fn every_list_query_uses_an_index_on_a_large_platform() {
    let app = spawn().await;
    let pool = &app.app.rt.pool;
    for sql in [
        "INSERT INTO campus_users (id, openid, name, registered_at) \
         SELECT i, 'openid-' || i, 'user ' || i, now() FROM generate_series(1, 20000) i",
        "INSERT INTO campus_blocks (id, name) SELECT i, 'block ' || i FROM generate_series(1, 20) i",
        "INSERT INTO campus_applications (id, name, description, pub_time, status, user_id, block_id) \
         SELECT i, 'org ' || i, 'why', now(), 1, 1 + i % 20000, 1 + i % 20 FROM generate_series(1, 10000) i",
        "INSERT INTO campus_organizations (id, application_id, name, create_time, owner_id, block_id) \
         SELECT i, i, 'org ' || i, now(), 1 + i % 20000, 1 + i % 20 FROM generate_series(1, 10000) i",
        "INSERT INTO campus_follows (id, org_id, user_id) \
         SELECT i, 1 + (i * 7919) % 10000, 1 + i % 20000 FROM generate_series(1, 100000) i \
         ON CONFLICT DO NOTHING",
        "INSERT INTO campus_managers (id, org_id, user_id) \
         SELECT i, 1 + i % 10000, 1 + (i * 31) % 20000 FROM generate_series(1, 20000) i \
         ON CONFLICT DO NOTHING",
        "INSERT INTO campus_feedbacks (id, user_id, feedback, contact, created_at) \
         SELECT i, 1 + i % 20000, 'f', 'c', now() FROM generate_series(1, 5000) i",
        "ANALYZE",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    let big = [
        "campus_users",
        "campus_applications",
        "campus_organizations",
        "campus_follows",
        "campus_managers",
        "campus_feedbacks",
    ];
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for (name, listing, args) in projections::campus::read::Listing::all() {
        for (kind, sql, paged) in [
            ("page", &listing.select, true),
            ("count", &listing.count, false),
        ] {
            // Counting a whole table reads it whole; counting a filtered part must not.
            if !paged && args == 0 {
                continue;
            }
            let mut query = sqlx::query_scalar::<_, Value>(Box::leak(
                format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}").into_boxed_str(),
            ));
            if paged {
                query = query
                    .bind(-1_i64)
                    .bind("Asia/Shanghai")
                    .bind(Some(20_i64))
                    .bind(0_i64);
            }
            // A user, an organisation or a block with rows (blocks hold 500 organisations).
            let sample = if name.contains("block") { 7_i64 } else { 4242 };
            for _ in 0..args {
                query = query.bind(sample);
            }
            let plan = query.fetch_one(pool).await.unwrap();
            let text = plan.to_string();
            println!(
                "{name} ({kind}): executed in {} ms\n{}\n",
                plan[0]["Execution Time"],
                serde_json::to_string_pretty(&plan).unwrap()
            );
            summary.push(format!(
                "{name:36} {kind:5} {:>8} ms",
                plan[0]["Execution Time"]
            ));
            for node in text.split("\"Node Type\":\"Seq Scan\"").skip(1) {
                let relation = node
                    .split("\"Relation Name\":\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or_default();
                if big.contains(&relation) {
                    failures.push(format!("{name} ({kind}) scans {relation}"));
                }
            }
        }
    }
    println!(
        "query (a page of 20, or the count)      time\n{}",
        summary.join("\n")
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn the_other_endpoints_answer_as_documented() {
    let app = spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let other = user(&app, "other").await;
    let b = block(&app, &admin, "博雅").await;
    // Users: the superusers' plain list, the envelope lookup, one user, a profile's rules.
    let list = app.get("/users/", &admin).await;
    assert_eq!(list.body.as_array().unwrap().len(), 2);
    assert_eq!(app.get("/users/", &owner.token).await.status, 403);
    let one = app
        .get(&format!("/users/?id={}", other.id), &owner.token)
        .await;
    assert_eq!(one.body["status"], 0);
    assert_eq!(one.body["results"]["name"], "other");
    for bad in ["999", "x", "-1"] {
        let reply = app.get(&format!("/users/?id={bad}"), &owner.token).await;
        assert_eq!(
            reply.body,
            json!({"status": 1, "msg": "invalid userID"}),
            "{bad}"
        );
    }
    assert_eq!(
        app.get("/users/999/", &owner.token).await.body,
        json!({"detail": "未找到。"})
    );
    let path = format!("/users/{}/", owner.id);
    assert_eq!(
        app.put(&path, &owner.token, json!({"sign": "s"}))
            .await
            .body,
        json!({"name": ["该字段是必填项。"]})
    );
    assert_eq!(
        app.put(&path, &owner.token, json!({"name": ""})).await.body,
        json!({"name": ["该字段不能为空。"]})
    );
    // Applications: listed for superusers, refused (nothing founded, name freed), withdrawn.
    let apply = |name: &str| {
        app.post(
            "/organizations/applications/",
            Some(&owner.token),
            json!({"name": name, "description": "d", "user": owner.id, "block": b}),
        )
    };
    let first = apply("甲").await;
    let refused = first.body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}", first.body));
    let withdrawn = apply("乙").await.body["id"].as_i64().unwrap();
    for nobody in ["999", "abc", "9223372036854775808"] {
        let path = format!("/users/organizations/applications/{nobody}/");
        assert_eq!(app.get(&path, &admin).await.body, json!([]), "{nobody}");
        assert_eq!(app.get(&path, &owner.token).await.status, 403, "{nobody}");
    }
    let all = app.get("/organizations/applications/", &admin).await;
    assert_eq!(all.body.as_array().unwrap().len(), 2);
    assert_eq!(all.body[0]["user"]["id"], owner.id);
    let verdict = app
        .put(
            &format!("/organizations/applications/verifications/{refused}/"),
            &admin,
            json!({"status": "2"}),
        )
        .await;
    assert_eq!(verdict.body, json!({"status": 2}));
    assert_eq!(
        app.scalar("SELECT count(*) FROM campus_organizations")
            .await,
        0
    );
    let mine = app
        .get(
            &format!("/users/organizations/applications/{}/", owner.id),
            &owner.token,
        )
        .await;
    assert_eq!(mine.body[0]["status"], 2);
    assert_eq!(apply("甲").await.status, 202, "a refusal frees the name");
    assert_eq!(
        app.delete(
            &format!("/organizations/applications/{withdrawn}/"),
            &other.token
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.delete(
            &format!("/organizations/applications/{withdrawn}/"),
            &owner.token
        )
        .await
        .status,
        204
    );
    assert_eq!(
        app.delete(
            &format!("/organizations/applications/{withdrawn}/"),
            &owner.token
        )
        .await
        .status,
        404
    );
    assert_eq!(apply("乙").await.status, 202, "a withdrawal frees the name");
    let missing = app
        .put(
            "/organizations/applications/verifications/999/",
            &admin,
            json!({"status": 1}),
        )
        .await;
    assert_eq!(missing.status, 404);
    // Organisations: a block's list, an edit to a taken name, owner and managers' rules.
    let org = organisation(&app, &admin, &owner, "组织", b).await;
    let second = organisation(&app, &admin, &owner, "组织二", b).await;
    let in_block = app
        .get(&format!("/blocks/orgs/?block={b}"), &other.token)
        .await;
    assert_eq!(in_block.body["status"], 0);
    assert_eq!(in_block.body["results"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.get("/blocks/orgs/?block=99", &other.token).await.body["status"],
        1
    );
    let clash = app
        .put(
            &format!("/organizations/{second}/"),
            &owner.token,
            json!({"name": "组织"}),
        )
        .await;
    assert_eq!(
        clash.body,
        json!({"name": ["具有 组织名称 的 organization 已存在。"]})
    );
    let described = app
        .put(
            &format!("/organizations/{second}/"),
            &owner.token,
            json!({"name": "组织二", "description": "描述", "avatar": "https://img/2"}),
        )
        .await;
    assert_eq!(described.status, 200, "keeping one's own name is no clash");
    let renamed = app
        .put(
            &format!("/organizations/{second}/"),
            &owner.token,
            json!({"name": "组织2"}),
        )
        .await;
    assert_eq!(
        renamed.body["description"], "描述",
        "what a PUT leaves out is kept"
    );
    assert_eq!(renamed.body["avatar"], "https://img/2");
    let cleared = app
        .put(
            &format!("/organizations/{second}/"),
            &owner.token,
            json!({"name": "组织二", "description": null}),
        )
        .await;
    assert_eq!(cleared.body["description"], Value::Null);
    assert_eq!(cleared.body["avatar"], "https://img/2");
    let pending_clash = app
        .put(
            &format!("/organizations/{second}/"),
            &owner.token,
            json!({"name": "乙"}),
        )
        .await;
    assert_eq!(pending_clash.status, 400);
    assert_eq!(
        app.put("/organizations/999/", &owner.token, json!({"name": "x"}))
            .await
            .status,
        404
    );
    let no_owner = app
        .post(
            &format!("/organizations/owner/{org}/"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(no_owner.body, json!({"owner": ["该字段是必填项。"]}));
    let nobody = app
        .post(
            &format!("/organizations/owner/{org}/"),
            Some(&owner.token),
            json!({"owner": 999}),
        )
        .await;
    assert_eq!(
        nobody.body,
        json!({"owner": ["无效主键 “999” － 对象不存在。"]})
    );
    assert_eq!(
        app.post(
            "/organizations/owner/999/",
            Some(&owner.token),
            json!({"owner": other.id})
        )
        .await
        .status,
        404
    );
    let appointed = app
        .post(
            "/organizations/managers/",
            Some(&owner.token),
            json!({"org": org, "person": other.id}),
        )
        .await;
    assert_eq!(appointed.status, 201);
    let invalid = app
        .post(
            "/organizations/managers/",
            Some(&owner.token),
            json!({"org": 999, "person": 998}),
        )
        .await;
    assert_eq!(
        invalid.body,
        json!({"org": ["无效主键 “999” － 对象不存在。"], "person": ["无效主键 “998” － 对象不存在。"]})
    );
    let dismiss = format!("/organizations/managers/?user={}&org={org}", other.id);
    assert_eq!(app.delete(&dismiss, &owner.token).await.status, 204);
    assert_eq!(
        app.get(&format!("/organizations/managers/{org}/"), &owner.token)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.delete(&dismiss, &owner.token).await.status,
        204,
        "dismissing twice changes nothing"
    );
    let the_owner = app
        .delete(
            &format!("/organizations/managers/?user={}&org={org}", owner.id),
            &owner.token,
        )
        .await;
    assert_eq!(the_owner.status, 400);
    assert_eq!(
        app.delete("/organizations/managers/?org=1", &owner.token)
            .await
            .body,
        json!({"user": ["该字段是必填项。"]})
    );
    assert_eq!(
        app.get("/organizations/managers/?org=nope", &owner.token)
            .await
            .body["status"],
        1
    );
    assert_eq!(
        app.get("/users/managed_organizations/999/", &owner.token)
            .await
            .body,
        json!([])
    );
    assert_eq!(
        app.get("/organizations/managers/999/", &owner.token)
            .await
            .body,
        json!([])
    );
    // Follows: unfollowing works and is idempotent.
    app.post(
        "/users/followed_organizations/",
        Some(&other.token),
        json!({"org": org, "person": other.id}),
    )
    .await;
    let unfollow = format!("/users/followed_organizations/?user={}&org={org}", other.id);
    assert_eq!(app.delete(&unfollow, &other.token).await.status, 204);
    assert_eq!(app.delete(&unfollow, &other.token).await.status, 204);
    assert_eq!(
        app.get(
            &format!("/users/followed_organizations/{}/", other.id),
            &other.token
        )
        .await
        .body,
        json!([])
    );
    // Catalogues: deletions, and what they leave.
    let c = app
        .post(
            "/activities/categories/",
            Some(&admin),
            json!({"name": "体育"}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let a = app
        .post(
            "/activities/addresses/",
            Some(&other.token),
            json!({"name": "场", "longitude": "1", "latitude": "2"}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.get("/activities/addresses/", &other.token).await.body[0]["latitude"],
        "2.000000"
    );
    for path in [
        format!("/activities/categories/{c}/"),
        format!("/activities/addresses/{a}/"),
        format!("/blocks/{b}/"),
    ] {
        assert_eq!(app.delete(&path, &admin).await.status, 204, "{path}");
        assert_eq!(app.delete(&path, &admin).await.status, 404, "{path} twice");
    }
    assert_eq!(app.get("/blocks/", &other.token).await.body, json!([]));
    // Organisations in a deleted block still show it; no new application may name it.
    let org_now = app.get("/organizations/?org=组织", &other.token).await;
    assert_eq!(org_now.body["results"]["block"]["name"], "博雅");
    let late = apply("丙").await;
    assert_eq!(
        late.body,
        json!({"block": [format!("无效主键 “{b}” － 对象不存在。")]})
    );
    // An application left pending in the deleted block founds nothing.
    let stranded = app
        .scalar("SELECT min(id) FROM campus_applications WHERE status = 0 AND NOT deleted")
        .await;
    let approve = app
        .put(
            &format!("/organizations/applications/verifications/{stranded}/"),
            &admin,
            json!({"status": 1}),
        )
        .await;
    assert_eq!(approve.body, json!({"detail": ["该申请的版块已删除。"]}));
    // The freed names can be taken again.
    let place = app
        .post(
            "/activities/addresses/",
            Some(&other.token),
            json!({"name": "场", "longitude": "1", "latitude": "2"}),
        )
        .await;
    assert_eq!(place.status, 201);
}

#[tokio::test]
async fn a_campus_login_answer_is_never_kept_for_retries() {
    let app = spawn().await;
    let first = user(&app, "kept").await;
    for path in ["/login/", "/userLogin/"] {
        let reply = app
            .authed(reqwest::Method::POST, path, &first.token)
            .header("Idempotency-Key", "same-key")
            .json(&json!({"code": "code-kept", "userInfo": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    assert_eq!(app.scalar("SELECT count(*) FROM idempotency_keys").await, 0);
}

#[tokio::test]
async fn a_deletion_cut_off_after_its_commit_is_completed_by_the_sweeper() {
    let app = spawn().await;
    let admin = superuser(&app).await;
    let gone = user(&app, "gone").await;
    let other = user(&app, "other").await;
    let b = block(&app, &admin, "博雅").await;
    let pending = app
        .post(
            "/organizations/applications/",
            Some(&gone.token),
            json!({"name": "孤儿", "description": "d", "user": gone.id, "block": b}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    // The deletion commits, and its request dies before withdrawing anything.
    app.app
        .campus
        .users
        .execute(
            &gone.id.to_string(),
            aggregates::campus::users::UserCommand::Delete,
            &runtime::bus::Actor::operator(),
        )
        .await
        .unwrap();
    let approve = app
        .put(
            &format!("/organizations/applications/verifications/{pending}/"),
            &admin,
            json!({"status": 1}),
        )
        .await;
    assert_eq!(approve.status, 400);
    assert_eq!(approve.body, json!({"detail": ["申请人已注销。"]}));
    assert_eq!(
        ensemble::campus::withdraw_orphaned(&app.app.campus, None).await,
        1
    );
    assert_eq!(
        ensemble::campus::withdraw_orphaned(&app.app.campus, None).await,
        0
    );
    let reused = app
        .post(
            "/organizations/applications/",
            Some(&other.token),
            json!({"name": "孤儿", "description": "d", "user": other.id, "block": b}),
        )
        .await;
    assert_eq!(reused.status, 202, "{}", reused.body);
}

#[tokio::test]
async fn odd_queries_and_coordinates_are_refused_and_tagged_addresses_share_a_limit() {
    let app = spawn().await;
    let u = user(&app, "u").await;
    for path in [
        "/organizations/?org=%00",
        "/organizations/managers/?org=a%00b",
        "/users/?id=%00",
        "/blocks/orgs/?block=1%00",
    ] {
        let reply = app.get(path, &u.token).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
    }
    for (longitude, latitude) in [("999.9999999", "1"), ("1", "-999.9999999"), ("1000", "1")] {
        let reply = app
            .post(
                "/activities/addresses/",
                Some(&u.token),
                json!({"name": format!("{longitude},{latitude}"), "longitude": longitude, "latitude": latitude}),
            )
            .await;
        assert_eq!(reply.status, 400, "{longitude},{latitude}: {}", reply.body);
    }
    let first = app
        .post(
            "/sendVerify/",
            Some(&u.token),
            json!({"email": "Box+1@buaa.edu.cn"}),
        )
        .await;
    assert_eq!(first.status, 200);
    let tagged = app
        .post(
            "/sendVerify/",
            Some(&u.token),
            json!({"email": "box+2@buaa.edu.cn"}),
        )
        .await;
    assert_eq!(tagged.status, 429, "one mailbox, one mail a minute");
}

#[tokio::test]
async fn no_event_names_a_person_after_their_erasure_whatever_the_read_models_say() {
    use aggregates::campus::organizations::{Caller, OrganizationCommand};
    use runtime::bus::{Actor, CommandError};
    let app = spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let gone = user(&app, "gone").await;
    let b = block(&app, &admin, "博雅").await;
    let org = organisation(&app, &admin, &owner, "组织", b).await;
    let stream: i64 = app
        .scalar(&format!(
            "SELECT application_id FROM campus_organizations WHERE id = {org}"
        ))
        .await;
    assert_eq!(
        app.delete(&format!("/users/{}/", gone.id), &gone.token)
            .await
            .status,
        204
    );
    // Past every read-model check (as a request racing the erasure would be), the append
    // itself refuses to hand the organisation to the erased user or appoint them.
    let organizations = &app.app.campus.organizations;
    for command in [
        OrganizationCommand::TransferOwnership {
            by: Caller::Superuser,
            to: gone.id as u64,
            appointment_id: 900,
        },
        OrganizationCommand::AppointManager {
            by: Caller::Superuser,
            user: gone.id as u64,
            appointment_id: 901,
        },
    ] {
        let outcome = organizations
            .execute(&stream.to_string(), command, &Actor::operator())
            .await;
        assert!(matches!(outcome, Err(CommandError::Gone)), "{outcome:?}");
    }
    // And an erased author's write does not commit, even with a token that still passes.
    let mut erased_author = Actor::operator();
    erased_author.requires = Some(aggregates::campus::users::user_subject(gone.id as u64));
    let outcome = organizations
        .execute(
            &stream.to_string(),
            OrganizationCommand::Delete {
                by: Caller::Superuser,
            },
            &erased_author,
        )
        .await;
    assert!(matches!(outcome, Err(CommandError::Gone)), "{outcome:?}");
    let before = events(&app).await;
    let still = app.get("/organizations/?org=组织", &owner.token).await;
    assert_eq!(still.body["results"]["owner"]["id"], owner.id);
    assert_eq!(events(&app).await, before);
    // Through the API the refusal reads as the documented field error.
    let handed = app
        .post(
            &format!("/organizations/owner/{org}/"),
            Some(&admin),
            json!({"owner": gone.id}),
        )
        .await;
    assert_eq!(handed.status, 400);
}

#[tokio::test]
async fn campus_writes_are_limited_per_user() {
    let app = spawn_app_with(|c| c.campus_write_limit = 3).await;
    let admin = superuser(&app).await;
    let u = user(&app, "u").await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let reply = app
            .post(
                "/feedbacks/",
                Some(&u.token),
                json!({"feedback": format!("f{i}")}),
            )
            .await;
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [201, 201, 201, 429]);
    // Reading does not count: HEAD and GET answer as before.
    let head = app
        .http
        .head(format!("{}/users/{}/", app.address, u.id))
        .header("Authorization", format!("JWT {}", u.token))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    // Reads and other people are not held back, nor superusers.
    assert_eq!(app.get("/blocks/", &u.token).await.status, 200);
    for i in 0..5 {
        let reply = app
            .post("/blocks/", Some(&admin), json!({"name": format!("b{i}")}))
            .await;
        assert_eq!(reply.status, 201);
    }
    assert_eq!(app.scalar("SELECT count(*) FROM campus_feedbacks").await, 3);
}

#[tokio::test]
async fn a_put_answers_what_it_committed_even_while_the_read_models_lag() {
    let app = spawn_app_with(|c| {
        c.campus_write_limit = 0;
        c.waits.projection = Duration::from_millis(300);
    })
    .await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let b = block(&app, &admin, "博雅").await;
    let org = organisation(&app, &admin, &owner, "旧名", b).await;
    // Hold the projector back: it cannot write these tables, requests can still read them.
    let mut hold = app.app.rt.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE campus_organizations, campus_users IN SHARE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let edited = app
        .put(
            &format!("/organizations/{org}/"),
            &owner.token,
            json!({"name": "新名", "description": "新描述"}),
        )
        .await;
    assert_eq!(edited.status, 200);
    assert_eq!(edited.body["name"], "新名");
    assert_eq!(edited.body["description"], "新描述");
    let profile = app
        .put(
            &format!("/users/{}/", owner.id),
            &owner.token,
            json!({"name": "新的我", "sign": "签名"}),
        )
        .await;
    assert_eq!(profile.status, 200);
    assert_eq!(profile.body["name"], "新的我");
    assert_eq!(profile.body["sign"], "签名");
    hold.rollback().await.unwrap();
}

/// An erasure held up at its commit (here: another erasure holds the erasures' counter) has
/// already locked its person's key: a change naming that person waits for it, then fails.
/// Before, such a change committed after the erasure's event; or, the other way round, the
/// two deadlocked.
#[tokio::test]
async fn a_change_naming_a_person_waits_for_their_erasure_then_fails() {
    let app = spawn().await;
    let admin = superuser(&app).await;
    let owner = user(&app, "owner").await;
    let victim = user(&app, "victim").await;
    let b = block(&app, &admin, "博雅").await;
    let org = organisation(&app, &admin, &owner, "组织", b).await;
    let mut hold = app.app.rt.pool.begin().await.unwrap();
    sqlx::query("SELECT * FROM erasures FOR UPDATE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let send = |method: reqwest::Method, path: String, body: Option<Value>| {
        let http = app.http.clone();
        let url = format!("{}{path}", app.address);
        let admin = admin.clone();
        tokio::spawn(async move {
            let mut request = http
                .request(method, url)
                .header("Authorization", format!("JWT {admin}"));
            if let Some(body) = body {
                request = request.json(&body);
            }
            request.send().await.unwrap().status().as_u16()
        })
    };
    let deletion = send(
        reqwest::Method::DELETE,
        format!("/users/{}/", victim.id),
        None,
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let transfer = send(
        reqwest::Method::POST,
        format!("/organizations/owner/{org}/"),
        Some(json!({"owner": victim.id})),
    );
    let follow = send(
        reqwest::Method::POST,
        "/users/followed_organizations/".into(),
        Some(json!({"org": org, "person": victim.id})),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    hold.rollback().await.unwrap();
    assert_eq!(deletion.await.unwrap(), 204);
    assert_eq!(transfer.await.unwrap(), 400);
    assert_eq!(follow.await.unwrap(), 400);
    let after: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM events e WHERE e.position > \
             (SELECT position FROM events WHERE event_type = 'UserDeleted') \
             AND (e.payload::text LIKE '%\"to\":{0}%' OR e.payload::text LIKE '%\"user_id\":{0}%')",
            victim.id
        ))
        .await;
    assert_eq!(after, 0, "an event names the user after their erasure");
}

#[tokio::test]
async fn an_erased_users_token_that_outlives_them_writes_nothing() {
    let app = spawn_app_with(|c| {
        c.campus_write_limit = 0;
        c.waits.projection = Duration::from_millis(300);
    })
    .await;
    let admin = superuser(&app).await;
    let gone = user(&app, "gone").await;
    let b = block(&app, &admin, "博雅").await;
    // The read models still show them (held back), the log has their erasure.
    let mut hold = app.app.rt.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE campus_users IN SHARE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    app.app
        .campus
        .users
        .execute(
            &gone.id.to_string(),
            aggregates::campus::users::UserCommand::Delete,
            &runtime::bus::Actor::operator(),
        )
        .await
        .unwrap();
    let before = events(&app).await;
    let feedback = app
        .post("/feedbacks/", Some(&gone.token), json!({"feedback": "f"}))
        .await;
    assert_eq!(feedback.status, 401, "{}", feedback.body);
    let own = app
        .post(
            "/organizations/applications/",
            Some(&gone.token),
            json!({"name": "n", "description": "d", "user": gone.id, "block": b}),
        )
        .await;
    assert_eq!(own.status, 401, "{}", own.body);
    let profile = app
        .put(
            &format!("/users/{}/", gone.id),
            &gone.token,
            json!({"name": "again"}),
        )
        .await;
    assert_eq!(profile.status, 401, "{}", profile.body);
    let twice = app
        .delete(&format!("/users/{}/", gone.id), &gone.token)
        .await;
    assert_eq!(twice.status, 401, "{}", twice.body);
    let for_them = app
        .post(
            "/organizations/applications/",
            Some(&admin),
            json!({"name": "n", "description": "d", "user": gone.id, "block": b}),
        )
        .await;
    assert_eq!(
        for_them.body,
        json!({"user": [format!("无效主键 “{}” － 对象不存在。", gone.id)]})
    );
    assert_eq!(events(&app).await, before);
    hold.rollback().await.unwrap();
}

#[tokio::test]
async fn nothing_is_applied_for_or_founded_in_a_block_deleted_at_the_same_moment() {
    use aggregates::campus::catalog::Unique;
    use aggregates::campus::organizations::{OrganizationCommand, ORG_NAME_SCOPE};
    use runtime::bus::{Actor, CommandError};
    let app = spawn().await;
    let admin = superuser(&app).await;
    let u = user(&app, "u").await;
    let b = block(&app, &admin, "博雅").await;
    let pending = app
        .post(
            "/organizations/applications/",
            Some(&u.token),
            json!({"name": "甲", "description": "d", "user": u.id, "block": b}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.delete(&format!("/blocks/{b}/"), &admin).await.status,
        204
    );
    // Past every read-model check (as a request racing the deletion would be), the append
    // itself refuses an application to the deleted block, and a founding in it.
    let organizations = &app.app.campus.organizations;
    let subject = aggregates::campus::users::user_subject(u.id as u64);
    let key = app.app.rt.keys.key(&subject).await.unwrap();
    let submit = OrganizationCommand::Submit {
        application_id: 999,
        name: Unique {
            value: "乙".into(),
            blind: app.app.rt.keys.blind(ORG_NAME_SCOPE, "乙"),
        },
        description: runtime::personal::seal(&subject, &key, "d"),
        applicant: u.id as u64,
        block: b as u64,
        at: chrono::Utc::now(),
    };
    let outcome = organizations
        .execute("999", submit, &Actor::operator())
        .await;
    assert!(matches!(outcome, Err(CommandError::Gone)), "{outcome:?}");
    let approve = OrganizationCommand::Decide {
        approve: true,
        organization_id: 998,
        appointment_id: 997,
        description: None,
        at: chrono::Utc::now(),
    };
    let outcome = organizations
        .execute(&pending.to_string(), approve, &Actor::operator())
        .await;
    assert!(matches!(outcome, Err(CommandError::Gone)), "{outcome:?}");
    assert_eq!(
        app.scalar("SELECT count(*) FROM campus_organizations")
            .await,
        0
    );
    // Refusing it still works, and frees its name.
    let refused = app
        .put(
            &format!("/organizations/applications/verifications/{pending}/"),
            &admin,
            json!({"status": 2}),
        )
        .await;
    assert_eq!(refused.status, 200);
}

/// A block deletion waiting behind a change in flight (one that holds the block's shared
/// guard) is not overtaken by changes that come after it: they queue behind the deletion,
/// then fail, and the log shows nothing in the block after its deletion. (With row locks the
/// waiting deletion had its transaction id, its place in the log, before the newcomers that
/// overtook it.)
#[tokio::test]
async fn changes_that_come_after_a_waiting_deletion_queue_behind_it() {
    let app = spawn().await;
    let admin = superuser(&app).await;
    let u = user(&app, "u").await;
    let b = block(&app, &admin, "博雅").await;
    // A change in flight that names the block (as an application holds it while it commits).
    let mut in_flight = app.app.rt.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock_shared(7011, hashtext($1))")
        .bind(format!("campus-Block:{b}"))
        .execute(&mut *in_flight)
        .await
        .unwrap();
    let send = |method: reqwest::Method, path: String, token: String, body: Option<Value>| {
        let http = app.http.clone();
        let url = format!("{}{path}", app.address);
        tokio::spawn(async move {
            let mut request = http
                .request(method, url)
                .header("Authorization", format!("JWT {token}"));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let reply = request.send().await.unwrap();
            (reply.status().as_u16(), reply.text().await.unwrap())
        })
    };
    let deletion = send(
        reqwest::Method::DELETE,
        format!("/blocks/{b}/"),
        admin.clone(),
        None,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = send(
        reqwest::Method::POST,
        "/organizations/applications/".into(),
        u.token.clone(),
        Some(json!({"name": "晚到", "description": "d", "user": u.id, "block": b})),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    in_flight.rollback().await.unwrap();
    assert_eq!(deletion.await.unwrap().0, 204);
    let (status, body) = late.await.unwrap();
    assert_eq!(status, 400, "{body}");
    let after = app
        .scalar(
            "SELECT count(*) FROM events a, events d WHERE d.event_type = 'BlockDeleted' \
             AND a.event_type = 'ApplicationSubmitted' \
             AND (a.transaction_id, a.position) > (d.transaction_id, d.position)",
        )
        .await;
    assert_eq!(after, 0);
}
