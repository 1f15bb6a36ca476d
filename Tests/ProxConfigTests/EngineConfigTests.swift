import ProxConfig
import ProxCore
import Testing

/// `server.engine`: its values, its default, and the diagnostics for a bad one.
@Suite struct EngineConfigTests {
    static let rest = """
    listeners: [{id: main, address: "127.0.0.1:80"}]
    routes: []
    """

    /// `auto`: io_uring where the probe passes and the engine carries the config (it measured
    /// faster than SwiftNIO in every cell of bench/compare.sh), else SwiftNIO.
    @Test func defaultIsAuto() {
        let s = valid("version: 1\n" + Self.rest)
        #expect(s?.settings.engine == .auto)
    }

    @Test func autoAndNIOCompile() {
        #expect(valid("version: 1\nserver: {engine: auto}\n" + Self.rest)?.settings.engine == .auto)
        #expect(valid("version: 1\nserver: {engine: nio}\n" + Self.rest)?.settings.engine == .nio)
    }

    @Test func unknownValue() {
        expectOne("version: 1\nserver: {engine: urin}\n" + Self.rest, "2:18", "server.engine",
                  "'urin' is not one of auto, uring, nio", hint: "did you mean 'uring'?")
    }

    @Test func wrongType() {
        expectOne("version: 1\nserver: {engine: 1}\n" + Self.rest, "2:18", "server.engine", "expected a string")
    }

    /// `uring` is a valid setting; whether it can run is decided at start (the probe, and what
    /// the config uses: `EngineDecision`).
    @Test func uringIsValid() {
        #expect(valid("version: 1\nserver: {engine: uring}\n" + Self.rest)?.settings.engine == .uring)
    }
}
