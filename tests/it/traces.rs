//! Traces of the kinds people paste into bug reports, against one repository built to match them: every frame maps
//! where it should (or is known not to be the repository's), and the suspect is the commit that wrote the crashing
//! line.

use shipwatch::assign::{Assigner, Settings};
use shipwatch::git::Git;
use shipwatch::github::NoGitHub;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{TestRepo, ALICE, BOB, CAROL};

const FILES: &[(&str, &str)] = &[
    ("pyproject.toml", "[project]\nname = \"acme-shop\"\n"),
    ("shop/__init__.py", ""),
    ("shop/views.py", ""),
    ("shop/cart.py", ""),
    ("web/package.json", "{\"name\": \"@acme/web\"}\n"),
    ("web/src/server.js", ""),
    ("web/src/cart.js", ""),
    ("go.mod", "module github.com/acme/shop\n\ngo 1.22\n"),
    ("internal/cart/cart.go", ""),
    ("cmd/shop/main.go", ""),
    ("android/app/src/main/java/com/acme/shop/CartService.java", ""),
    ("android/app/src/main/kotlin/com/acme/shop/ui/CartFragment.kt", ""),
    ("rails/app/models/order.rb", ""),
    ("rails/app/controllers/orders_controller.rb", ""),
    ("ruby/acme-shop.gemspec", "Gem::Specification.new do |s|\n  s.name = \"acme-shop\"\nend\n"),
    ("ruby/lib/acme/shop.rb", ""),
    ("Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\n"),
    ("crates/api/Cargo.toml", "[package]\nname = \"shop-api\"\nversion = \"0.3.0\"\n"),
    ("crates/api/src/handler.rs", ""),
    ("crates/core/Cargo.toml", "[package]\nname = \"acme-core\"\nversion = \"1.0.0\"\n"),
    ("crates/core/src/money.rs", ""),
    ("dotnet/src/Shop.Api/Controllers/CartController.cs", ""),
    ("php/app/Http/Controllers/CartController.php", ""),
];

/// (name, trace, [(printed path, expected repository path)], repository path of the suspect's frame)
type Case = (&'static str, &'static str, &'static [(&'static str, Option<&'static str>)], &'static str);

const CASES: &[Case] = &[
    (
        "python django in a virtualenv",
        "Traceback (most recent call last):\n  File \"/home/deploy/.venv/lib/python3.11/site-packages/django/core/handlers/exception.py\", line 55, in inner\n    response = get_response(request)\n  File \"/home/deploy/shop/shop/views.py\", line 30, in checkout\n    total = cart.total()\n  File \"/home/deploy/shop/shop/cart.py\", line 12, in total\n    return sum(i.price for i in self.items) / len(self.items)\nZeroDivisionError: division by zero\n",
        &[("django/core/handlers/exception.py", None), ("/home/deploy/shop/shop/views.py", Some("shop/views.py")), ("/home/deploy/shop/shop/cart.py", Some("shop/cart.py"))],
        "shop/cart.py",
    ),
    (
        "python on windows with a virtualenv",
        "Traceback (most recent call last):\n  File \"C:\\Users\\Ann Lee\\Projects\\shop (dev)\\shop\\views.py\", line 8, in <module>\n    main()\n  File \"C:\\Users\\Ann Lee\\Projects\\shop (dev)\\venv\\Lib\\site-packages\\requests\\api.py\", line 73, in get\n    return request(\"get\", url)\nrequests.exceptions.ConnectionError: refused\n",
        &[("views.py", Some("shop/views.py")), ("requests\\api.py", None)],
        "shop/views.py",
    ),
    (
        "python: the shop package installed in a container",
        "Traceback (most recent call last):\n  File \"/usr/local/lib/python3.12/runpy.py\", line 198, in _run_module_as_main\n  File \"/usr/local/lib/python3.12/site-packages/shop/cart.py\", line 21, in total\nKeyError: 'price'\n",
        &[("runpy.py", None), ("site-packages/shop/cart.py", Some("shop/cart.py"))],
        "shop/cart.py",
    ),
    (
        "node express with node_modules",
        "TypeError: Cannot read properties of undefined (reading 'items')\n    at cartTotal (/app/web/src/cart.js:14:22)\n    at /app/web/src/server.js:40:17\n    at Layer.handle [as handle_request] (/app/node_modules/express/lib/router/layer.js:95:5)\n    at next (/app/node_modules/express/lib/router/route.js:144:13)\n",
        &[("/app/web/src/cart.js", Some("web/src/cart.js")), ("/app/web/src/server.js", Some("web/src/server.js")), ("express/lib/router/layer.js", None)],
        "web/src/cart.js",
    ),
    (
        "node with webpack source maps",
        "Error: checkout failed\n    at Cart.total (webpack:///./src/cart.js?1a2b:9:11)\n    at Object.handler (webpack:///./src/server.js:22:5)\n    at processTicksAndRejections (node:internal/process/task_queues:95:5)\n",
        &[("webpack:///./src/cart.js?1a2b", Some("web/src/cart.js")), ("node:internal/process/task_queues", None)],
        "web/src/cart.js",
    ),
    (
        "node on windows, the package installed from the monorepo",
        "RangeError: Invalid array length\n    at total (C:\\shop\\node_modules\\@acme\\web\\src\\cart.js:5:9)\n    at C:\\shop\\index.js:3:1\n",
        &[("@acme\\web\\src\\cart.js", Some("web/src/cart.js")), ("C:\\shop\\index.js", None)],
        "web/src/cart.js",
    ),
    (
        "go panic in the module cache",
        "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]\n\ngoroutine 7 [running]:\ngithub.com/acme/shop/internal/cart.(*Cart).Total(0x0)\n\t/root/go/pkg/mod/github.com/acme/shop@v1.8.0/internal/cart/cart.go:27 +0x1c\nmain.main()\n\t/root/go/pkg/mod/github.com/acme/shop@v1.8.0/cmd/shop/main.go:12 +0x2d\n",
        &[("internal/cart/cart.go", Some("internal/cart/cart.go")), ("cmd/shop/main.go", Some("cmd/shop/main.go"))],
        "internal/cart/cart.go",
    ),
    (
        "go built in CI with the standard library and a dependency",
        "panic: boom\n\ngoroutine 1 [running]:\ngithub.com/lib/pq.(*conn).query(0xc0001)\n\t/home/runner/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go:891 +0x3c\ngithub.com/acme/shop/internal/cart.Load()\n\t/home/runner/work/shop/shop/internal/cart/cart.go:44 +0x99\nruntime.main()\n\t/opt/hostedtoolcache/go/1.22.1/x64/src/runtime/proc.go:271 +0x28\n",
        &[("github.com/lib/pq@v1.10.9/conn.go", None), ("/home/runner/work/shop/shop/internal/cart/cart.go", Some("internal/cart/cart.go")), ("runtime/proc.go", None)],
        "internal/cart/cart.go",
    ),
    (
        "java with file names only",
        "Exception in thread \"http-nio-8080-exec-1\" java.lang.IllegalStateException: empty cart\n\tat com.acme.shop.CartService.checkout(CartService.java:42)\n\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)\n\tat java.base/java.lang.Thread.run(Thread.java:833)\n",
        &[("CartService.java", Some("android/app/src/main/java/com/acme/shop/CartService.java")), ("FrameworkServlet.java", None), ("Thread.java", None)],
        "android/app/src/main/java/com/acme/shop/CartService.java",
    ),
    (
        "kotlin on android (logcat)",
        "E/AndroidRuntime( 4242): java.lang.NullPointerException: items\nE/AndroidRuntime( 4242): \tat com.acme.shop.ui.CartFragment.onBind(CartFragment.kt:31)\nE/AndroidRuntime( 4242): \tat android.view.View.performClick(View.java:7448)\n",
        &[("CartFragment.kt", Some("android/app/src/main/kotlin/com/acme/shop/ui/CartFragment.kt")), ("View.java", None)],
        "android/app/src/main/kotlin/com/acme/shop/ui/CartFragment.kt",
    ),
    (
        "rails with gems",
        "/srv/www/shop/releases/20261120/rails/app/models/order.rb:18:in `total': undefined method `+' for nil (NoMethodError)\n\tfrom /srv/www/shop/releases/20261120/rails/app/controllers/orders_controller.rb:9:in `create'\n\tfrom /usr/local/bundle/ruby/3.3.0/gems/actionpack-7.1.3/lib/action_controller/metal/basic_implicit_render.rb:6:in `send_action'\n",
        &[("rails/app/models/order.rb", Some("rails/app/models/order.rb")), ("orders_controller.rb", Some("rails/app/controllers/orders_controller.rb")), ("actionpack-7.1.3", None)],
        "rails/app/models/order.rb",
    ),
    (
        "ruby: the repository's own gem, installed",
        "/usr/local/bundle/gems/acme-shop-2.4.0/lib/acme/shop.rb:7:in 'Acme::Shop.charge': declined (Acme::Shop::Declined)\n\tfrom bin/charge:3:in '<main>'\n",
        &[("acme-shop-2.4.0/lib/acme/shop.rb", Some("ruby/lib/acme/shop.rb")), ("bin/charge", None)],
        "ruby/lib/acme/shop.rb",
    ),
    (
        "rust: a workspace crate from the cargo registry",
        "thread 'main' panicked at /home/ci/.cargo/registry/src/index.crates.io-6f17d22bba15001f/acme-core-1.0.0/src/money.rs:16:9:\noverflow\nstack backtrace:\n   0: rust_begin_unwind\n             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/src/panicking.rs:645:5\n   1: acme_core::money::add\n             at /home/ci/.cargo/registry/src/index.crates.io-6f17d22bba15001f/acme-core-1.0.0/src/money.rs:16:9\n   2: shop_api::handler::charge\n             at ./crates/api/src/handler.rs:33:5\n",
        &[("panicking.rs", None), ("acme-core-1.0.0/src/money.rs", Some("crates/core/src/money.rs")), ("./crates/api/src/handler.rs", Some("crates/api/src/handler.rs"))],
        "crates/core/src/money.rs",
    ),
    (
        "rust: the old panic format, built elsewhere",
        "thread 'tokio-runtime-worker' panicked at 'called `Option::unwrap()` on a `None` value', /builds/acme/shop/crates/api/src/handler.rs:48:22\n",
        &[("/builds/acme/shop/crates/api/src/handler.rs", Some("crates/api/src/handler.rs"))],
        "crates/api/src/handler.rs",
    ),
    (
        ".net built on a windows agent",
        "System.InvalidOperationException: Sequence contains no elements\n   at System.Linq.ThrowHelper.ThrowNoElementsException()\n   at Shop.Api.Controllers.CartController.Checkout(Int32 id) in C:\\build\\agent\\_work\\1\\s\\src\\Shop.Api\\Controllers\\CartController.cs:line 27\n",
        &[("CartController.cs", Some("dotnet/src/Shop.Api/Controllers/CartController.cs"))],
        "dotnet/src/Shop.Api/Controllers/CartController.cs",
    ),
    (
        "php laravel with vendor frames",
        "PHP Fatal error:  Uncaught RuntimeException: Card declined in /var/www/html/php/app/Http/Controllers/CartController.php:35\nStack trace:\n#0 /var/www/html/vendor/laravel/framework/src/Illuminate/Routing/Controller.php(54): App\\Http\\Controllers\\CartController->checkout()\n#1 {main}\n  thrown in /var/www/html/php/app/Http/Controllers/CartController.php on line 35\n",
        &[("php/app/Http/Controllers/CartController.php", Some("php/app/Http/Controllers/CartController.php")), ("vendor/laravel", None)],
        "php/app/Http/Controllers/CartController.php",
    ),
];

#[tokio::test]
async fn real_world_traces_map_and_blame_correctly() {
    let repo = TestRepo::new();
    let authors = [&ALICE, &BOB, &CAROL];
    let body: String = (1..=60).map(|i| format!("line {i}\n")).collect();
    let mut written_by: HashMap<&str, String> = HashMap::new();
    for (i, (path, text)) in FILES.iter().enumerate() {
        let content = if text.is_empty() { body.clone() } else { (*text).to_owned() };
        let sha = repo.commit(authors[i % 3], &[(path, &content)], &format!("add {path}"));
        written_by.insert(path, sha);
    }
    let head = repo.head();
    let assigner = Assigner::new(Git::new("git", Duration::from_secs(60), None, true), Arc::new(NoGitHub));
    assert!(CASES.len() >= 15);
    for (name, trace, expected, suspect_path) in CASES {
        let (_, frames, crash) = shipwatch::explain::frames_from_input(trace).unwrap_or_else(|e| panic!("{name}: {e}"));
        let a = assigner
            .assign(repo.path(), &head, None, &frames, &crash, &Settings::default(), None)
            .await
            .expect("assigns");
        for (printed, want) in *expected {
            let f = a
                .frames
                .iter()
                .find(|f| f.raw_path.contains(printed))
                .unwrap_or_else(|| panic!("{name}: no frame printed as {printed}: {:?}", a.frames));
            assert_eq!(f.repo_path.as_deref(), *want, "{name}: {printed} ({})", f.mapping);
            if let Some(path) = want {
                assert_eq!(
                    f.blame.as_ref().map(|b| b.commit.as_str()),
                    Some(written_by[path].as_str()),
                    "{name}: {path}"
                );
            }
        }
        let s = a.suspect.as_ref().unwrap_or_else(|| panic!("{name}: no suspect"));
        assert_eq!(a.frames[s.frame_index].repo_path.as_deref(), Some(*suspect_path), "{name}: {}", s.reason);
        assert_eq!(s.commit, written_by[suspect_path], "{name}");
    }
}
