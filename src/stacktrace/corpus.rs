//! Realistic traces of every supported language, as people paste them into bug reports: the parsers' tests and the
//! fuzzer's seed corpus.

pub const PYTHON_CHAINED: &str = r#"Traceback (most recent call last):
  File "/srv/app/payments/views.py", line 17, in checkout
    total = average(order.amount, order.items)
  File "/srv/app/payments/total.py", line 42, in average
    return amount / count
           ~~~~~~~^~~~~~~
ZeroDivisionError: division by zero

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py", line 1484, in full_dispatch_request
    rv = self.dispatch_request()
  File "/srv/app/payments/views.py", line 19, in checkout
    raise PaymentError(f"could not total order {order.id}") from e
payments.errors.PaymentError: could not total order 7
"#;

pub const PYTHON_WINDOWS: &str = r#"Traceback (most recent call last):
  File "C:\Users\Ann Lee\My Project (2)\venv\Lib\site-packages\requests\api.py", line 73, in get
    return request("get", url, params=params, **kwargs)
  File "C:\Users\Ann Lee\My Project (2)\app\client.py", line 8, in <module>
    fetch()
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded
"#;

pub const PYTHON_TRUNCATED: &str = r#"Traceback (most recent call last):
  File "/app/worker.py", line 88, in run
    self.handle(job)
  File "/app/worker.py", line 102, in handle
    re"#;

pub const JS_NODE: &str = r#"/srv/app/src/server.js:42
    const total = order.items.reduce((a, b) => a + b.price, 0);
                              ^

TypeError: Cannot read properties of undefined (reading 'reduce')
    at computeTotal (/srv/app/src/server.js:42:31)
    at Layer.handle [as handle_request] (/srv/app/node_modules/express/lib/router/layer.js:95:5)
    at async Promise.all (index 0)
    at new Checkout (webpack:///./src/checkout.ts:12:9)
    at /srv/my app (copy)/src/index.js:7:3
    at processTicksAndRejections (node:internal/process/task_queues:95:5)
    at Object.<anonymous> (C:\Users\Ann\app\main.js:3:1)
"#;

pub const JS_TRUNCATED: &str = "Error: connect ECONNREFUSED 127.0.0.1:5432\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)\n    at Pool.connect (/app/node_modules/pg-pool/index.js:45";

pub const GO_PANIC: &str = r#"panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
github.com/acme/web/internal/pay.(*Service).Charge(0xc000012345, {0x4b2f20, 0x5})
	/home/ci/go/pkg/mod/github.com/acme/web@v1.4.2/internal/pay/service.go:42 +0x1d
main.handler(...)
	/src/cmd/web/main.go:18
main.main()
	/src/cmd/web/main.go:9 +0x65
exit status 2
"#;

pub const GO_GOROUTINES: &str = r#"fatal error: all goroutines are asleep - deadlock!

goroutine 1 [chan receive]:
main.main()
	C:/Users/dev/My Projects (old)/app/main.go:12 +0x2f

goroutine 6 [chan send]:
main.worker(0x0?)
	C:/Users/dev/My Projects (old)/app/worker.go:20 +0x45
created by main.main in goroutine 1
	C:/Users/dev/My Projects (old)/app/main.go:10 +0x25
"#;

pub const JAVA_CAUSED_BY: &str = r#"Exception in thread "main" java.lang.IllegalStateException: could not charge order 7
	at com.acme.pay.PaymentService.charge(PaymentService.java:42)
	at com.acme.web.CheckoutController.checkout(CheckoutController.kt:17)
	at java.base/java.lang.Thread.run(Thread.java:833)
Caused by: java.lang.ArithmeticException: / by zero
	at com.acme.pay.Totals.average(Totals.java:12)
	at com.acme.pay.PaymentService.charge(PaymentService.java:40)
	... 2 more
"#;

pub const JAVA_ANDROID: &str = r#"11-20 14:03:12.345  4242  4242 E AndroidRuntime: FATAL EXCEPTION: main
11-20 14:03:12.345  4242  4242 E AndroidRuntime: Process: com.acme.app, PID: 4242
11-20 14:03:12.345  4242  4242 E AndroidRuntime: java.lang.NullPointerException: Attempt to invoke virtual method 'int java.lang.String.length()' on a null object reference
11-20 14:03:12.345  4242  4242 E AndroidRuntime: 	at com.acme.app.ui.CartFragment.onBind(CartFragment.kt:88)
11-20 14:03:12.345  4242  4242 E AndroidRuntime: 	at android.view.View.performClick(View.java:7448)
11-20 14:03:12.345  4242  4242 E AndroidRuntime: 	at com.android.internal.os.ZygoteInit.main(ZygoteInit.java:936)
"#;

pub const RUBY_CLASSIC: &str = r#"/srv/app/app/models/order.rb:42:in `total': undefined method `+' for nil:NilClass (NoMethodError)
	from /srv/app/app/controllers/checkout_controller.rb:17:in `block in create'
	from /usr/local/bundle/gems/actionpack-7.1.2/lib/action_controller/metal/basic_implicit_render.rb:6:in `send_action'
	from C:/Ruby32/lib/ruby/gems/3.2.0/gems/rack-3.0.8/lib/rack/builder.rb:244:in `call'
"#;

pub const RUBY_REVERSED: &str = r#"Traceback (most recent call last):
	2: from app.rb:9:in `<main>'
	1: from app.rb:5:in `run'
app.rb:2:in `charge': card declined (RuntimeError)
"#;

pub const RUBY_34: &str = "lib/my app (v2)/pay.rb:12:in 'Pay#charge': card declined (Pay::Declined)\n\tfrom lib/my app (v2)/pay.rb:30:in 'block in Pay.run'\n\tfrom app.rb:3:in '<main>'\n";

pub const RUST_NEW: &str = r#"thread 'main' panicked at src/pay/total.rs:42:18:
attempt to divide by zero
stack backtrace:
   0: rust_begin_unwind
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/src/panicking.rs:645:5
   1: core::panicking::panic_const::panic_const_div_by_zero
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/panicking.rs:181:21
   2: shop::pay::total::average
             at ./src/pay/total.rs:42:18
   3: shop::main
             at ./src/main.rs:7:5
   4: core::ops::function::FnOnce::call_once
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/ops/function.rs:250:5
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.
"#;

pub const RUST_OLD: &str = "thread 'tokio-runtime-worker' panicked at 'called `Option::unwrap()` on a `None` value', /home/ci/.cargo/registry/src/github.com-1ecc6299db9ec823/serde_json-1.0.100/src/de.rs:12:5\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";

pub const RUST_FULL: &str = r#"thread 'main' panicked at src\main.rs:3:5:
boom
stack backtrace:
   0:     0x7ff6c1a3b1f2 - std::backtrace_rs::backtrace::dbghelp64::trace::h5ad5b7e3b1f0c1d2
                               at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf\library\std\src\..\..\backtrace\src\backtrace\dbghelp64.rs:99
   1:     0x7ff6c1a3c010 - app::main::h0123456789abcdef
                               at C:\Users\Dev Team\app (v2)\src\main.rs:3
"#;

pub const DOTNET_INNER: &str = r#"System.InvalidOperationException: Could not charge order 7 ---> System.DivideByZeroException: Attempted to divide by zero.
   at Acme.Pay.Totals.Average(Decimal amount, Int32 count) in C:\src\Acme Pay (main)\Totals.cs:line 12
   at Acme.Pay.PaymentService.Charge(Order order) in C:\src\Acme Pay (main)\PaymentService.cs:line 40
   --- End of inner exception stack trace ---
   at Acme.Pay.PaymentService.Charge(Order order) in C:\src\Acme Pay (main)\PaymentService.cs:line 44
   at Acme.Web.Controllers.CheckoutController.Post(CheckoutRequest req) in /src/Acme.Web/Controllers/CheckoutController.cs:line 27
   at System.Threading.Tasks.Task.ExecuteWithThreadLocal(Task& currentTaskSlot)
--- End of stack trace from previous location ---
   at Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.Execute(IActionResultTypeMapper mapper)
"#;

pub const DOTNET_SIMPLE: &str = "Unhandled exception. System.NullReferenceException: Object reference not set to an instance of an object.\n   at Shop.Program.Main(String[] args) in /home/dev/shop/Program.cs:line 9\n";

pub const PHP_UNCAUGHT: &str = r#"PHP Fatal error:  Uncaught RuntimeException: Card declined in /var/www/app/src/Pay/Gateway.php:42
Stack trace:
#0 /var/www/app/src/Pay/Service.php(17): App\Pay\Gateway->charge(Object(App\Order))
#1 /var/www/app/vendor/laravel/framework/src/Illuminate/Routing/Controller.php(54): App\Pay\Service->checkout(Array)
#2 [internal function]: Illuminate\Routing\Controller->callAction('checkout', Array)
#3 {main}
  thrown in /var/www/app/src/Pay/Gateway.php on line 42
"#;

pub const PHP_CHAINED_WINDOWS: &str = r#"InvalidArgumentException: Bad amount in C:\xampp\htdocs\my shop (old)\src\Money.php:10
Stack trace:
#0 C:\xampp\htdocs\my shop (old)\index.php(5): Money->__construct(-1)
#1 {main}

Next LogicException: Checkout failed in C:\xampp\htdocs\my shop (old)\index.php:7
Stack trace:
#0 {main}
"#;

/// (name, language, text) for every trace above.
pub const TRACES: &[(&str, &str, &str)] = &[
    ("python-chained", "python", PYTHON_CHAINED),
    ("python-windows", "python", PYTHON_WINDOWS),
    ("python-truncated", "python", PYTHON_TRUNCATED),
    ("js-node", "javascript", JS_NODE),
    ("js-truncated", "javascript", JS_TRUNCATED),
    ("go-panic", "go", GO_PANIC),
    ("go-goroutines", "go", GO_GOROUTINES),
    ("java-caused-by", "java", JAVA_CAUSED_BY),
    ("java-android", "java", JAVA_ANDROID),
    ("ruby-classic", "ruby", RUBY_CLASSIC),
    ("ruby-reversed", "ruby", RUBY_REVERSED),
    ("ruby-34", "ruby", RUBY_34),
    ("rust-new", "rust", RUST_NEW),
    ("rust-old", "rust", RUST_OLD),
    ("rust-full", "rust", RUST_FULL),
    ("dotnet-inner", "dotnet", DOTNET_INNER),
    ("dotnet-simple", "dotnet", DOTNET_SIMPLE),
    ("php-uncaught", "php", PHP_UNCAUGHT),
    ("php-chained-windows", "php", PHP_CHAINED_WINDOWS),
];
