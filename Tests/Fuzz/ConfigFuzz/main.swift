// libFuzzer harness for the config path: loading (YAML through our composer over libyaml, JSON through JSONLoader),
// decoding, validation and ConfigCompiler, down to the compiled Router and filter chains. Not
// part of `swift test`: built and run by scripts/fuzz-config.sh with -sanitize=fuzzer,address;
// the entry point at the bottom hands control to libFuzzer's driver. The script passes
// -timeout and -rss_limit_mb, so a hang or unbounded memory is a finding like a crash.
//
// Every input is compiled twice: as `fuzz.yaml` and as `fuzz.json` (the file name picks the
// loader). Checks, beyond "no crash, no hang, bounded memory":
// - every diagnostic has a sane position: line and column >= 1, line at most one past the
//   text's last line (counting lines as YAML does: a lone CR ends one too); diagnostics come
//   sorted by position;
// - a snapshot is returned exactly when there is no error diagnostic;
// - an accepted snapshot is usable: its router has one spec per route, and on a few requests
//   (fixed ones and ones built from the routes' own hosts and paths), on every listener, the
//   compiled Router picks the same route as ReferenceRouter (the definition); the picked
//   route's filter chain runs its request and response sides without crashing.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ProxCore
import ProxConfig

@inline(never)
func check(_ ok: @autoclosure () -> Bool, _ what: @autoclosure () -> String) {
    if !ok() {
        fputs("INVARIANT VIOLATED: \(what())\n", stderr)
        abort()
    }
}

func checkDiagnostics(_ r: CompileResult, text: String, fileName: String) {
    // Lines as YAML (libyaml) and editors count them: a lone CR breaks a line too, and so do
    // NEL, LS and PS (YAML 1.1). A bound, not an exact count.
    var lineCount = 1
    var previous: Unicode.Scalar = " "
    for u in text.unicodeScalars {
        switch u {
        case "\n" where previous == "\r": break
        case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}": lineCount += 1
        default: break
        }
        previous = u
    }
    var last: (Int, Int)? = nil
    for d in r.diagnostics {
        check(d.file == fileName, "diagnostic names another file: \(d)")
        check(d.line >= 1 && d.column >= 1, "diagnostic position below 1: \(d)")
        check(d.line <= lineCount + 1, "diagnostic line past the end (\(lineCount) lines): \(d)")
        check(!d.message.isEmpty, "empty diagnostic message")
        if let (l, c) = last { check((l, c) <= (d.line, d.column), "diagnostics not sorted by position") }
        last = (d.line, d.column)
    }
    check(r.isValid == r.errors.isEmpty, "snapshot \(r.isValid ? "with" : "without") errors: \(r.errors)")
}

/// A request that would reach a route with this spec, when one is easy to write down.
func sample(for spec: RouteMatchSpec) -> RequestHead? {
    var host = "example.com"
    switch spec.hosts.first {
    case .exact(let h)?: host = h
    case .wildcard(let s)?: host = "a" + s
    default: break
    }
    var path = "/"
    switch spec.path {
    case .exact(let p)?, .prefix(let p)?: path = p.hasPrefix("/") ? p + "x" : "/" + p
    default: break
    }
    guard host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
          host.utf8.count < 256, path.utf8.count < 1024 else { return nil }
    let method = spec.methods?.sorted(by: { $0.description < $1.description }).first ?? .get
    return RequestHead.make(method: method, target: path + "?q=1", headers: [("Host", host), ("Cookie", "a=b"), ("X-Test", "1")])
}

func exercise(_ s: Snapshot) {
    check(s.router.specs.count == s.routes.count, "router specs \(s.router.specs.count) vs routes \(s.routes.count)")
    let reference = ReferenceRouter(s.router.specs)
    var heads = [
        RequestHead.make(method: .get, target: "/", headers: [("Host", "example.com")]),
        RequestHead.make(method: .post, target: "/api/v1/users/42?x=%zz&y", headers: [("Host", "API.Example.com:8080"), ("Content-Length", "0")]),
    ]
    for r in s.routes.prefix(8) { if let h = sample(for: r.match) { heads.append(h) } }
    for listener in s.listeners.prefix(4) {
        for head in heads {
            let got = s.router.match(head, listener: listener.index)?.routeIndex
            let want = reference.match(head, listener: listener.index)?.routeIndex
            check(got == want, "Router picked \(String(describing: got)), ReferenceRouter \(String(describing: want)) for \(head.method) \(head.target)")
            guard let i = got else { continue }
            check(i >= 0 && i < s.routes.count, "route index out of range")
            let ctx = RequestContext(head: head, snapshot: s, listener: listener, client: IPAddress("192.0.2.1")!, clientPort: 40000,
                                     eventLoop: nil)
            let route = s.routes[i]
            ctx.route = route
            route.captureInto(ctx)
            let (_, ran) = route.chain.runRequest(ctx)
            var response = ResponseHead(status: 200)
            route.chain.runResponse(ctx, &response, ranCount: ran)
        }
    }
}

/// CONFIG_FUZZ_VERBOSE=1 prints each run's diagnostics (to check seeds: `ConfigFuzz seed.yaml`).
let verbose = getenv("CONFIG_FUZZ_VERBOSE") != nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    for fileName in ["fuzz.yaml", "fuzz.json"] {
        let r = ConfigCompiler.compile(text: text, fileName: fileName, version: 1)
        checkDiagnostics(r, text: text, fileName: fileName)
        if verbose { print("\(fileName): \(r.isValid ? "valid" : "invalid")"); r.diagnostics.forEach { print("  \($0)") } }
        if let s = r.snapshot { exercise(s) }
    }
    return 0
}

// SwiftPM links executables with their own entry point (`main` aliased to the module's), so
// libFuzzer's `main` is not used: run its driver from here instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

var fuzzArgc = CommandLine.argc
var fuzzArgv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&fuzzArgc, &fuzzArgv, fuzzConfig))
