import ProxConfig
import ProxCore
import Testing

/// `server.engine`: its values, its default, and the diagnostics for a bad one.
@Suite struct EngineConfigTests {
    static let rest = """
    listeners: [{id: main, address: "127.0.0.1:80"}]
    routes: []
    """

    @Test func defaultIsNIO() {
        let s = valid("version: 1\n" + Self.rest)
        #expect(s?.settings.engine == .nio)
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

    /// The io_uring engine serves no listener in this build: a config that asks for it is refused
    /// where it says so, never started on an engine that cannot carry it.
    @Test func uringRefusedUntilItServes() {
        expectOne("version: 1\nserver: {engine: uring}\n" + Self.rest, "2:18", "server.engine",
                  "the io_uring engine does not serve HTTP/1 listeners yet", hint: "use `auto`")
    }
}
