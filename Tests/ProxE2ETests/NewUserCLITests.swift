import ArgumentParser
import Foundation
import ProxCLI
import Testing

/// What a new user tripped on when trying the command line (issue 8, "Fix what a new user
/// tripped on"): each test failed on the main of the day.
@Suite(.serialized) struct NewUserCLITests {
    typealias CLI = CLITests

    // MARK: 2. subcommands, --version, --threads

    @Test func misspeltSubcommandIsNamedWithASuggestion() throws {
        let r = try CLI.prox(["valdate", "configs/basic.yaml"])
        #expect(r.status == 2)
        #expect(r.err.contains("unknown command 'valdate', did you mean 'validate'?"), "\(r.err)")
        #expect(!r.err.contains("unexpected arguments"))
        let far = try CLI.prox(["frobnicate"])
        #expect(far.status == 2)
        #expect(far.err.contains("unknown command 'frobnicate'"), "\(far.err)")
        #expect(far.err.contains("validate"), "lists the commands: \(far.err)")
    }

    @Test func versionIsPrinted() throws {
        let r = try CLI.prox(["--version"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.hasPrefix("prox "), "\(r.out)")
    }

    @Test func zeroThreadsIsRefused() throws {
        let r = try CLI.prox(["serve", "--threads", "0"])
        #expect(r.status == 64, "\(r.err)")
        #expect(r.err.contains("--threads"), "\(r.err)")
        #expect(r.err.contains("at least 1"), "\(r.err)")
    }

    // MARK: 9. --help text

    /// The argument parser wraps help to the terminal's width; a line break written inside a
    /// paragraph breaks the text again in the middle of a wrapped line. Paragraphs are one line
    /// each (a blank line between them); only indented lines (examples) stand on their own.
    @Test func helpTextHasNoHardLineBreaksInsideParagraphs() {
        let commands: [any ParsableCommand.Type] = [ProxCommand.self] + ProxCommand.configuration.subcommands
        for c in commands {
            let lines = c.configuration.discussion.split(separator: "\n", omittingEmptySubsequences: false)
            for (a, b) in zip(lines, lines.dropFirst()) where !a.isEmpty && !b.isEmpty {
                let prose = { (l: Substring) in l.first.map { !$0.isWhitespace } ?? false }
                #expect(!(prose(a) && prose(b)), "\(c._commandName): a hard break inside a paragraph after '\(a)'")
            }
        }
    }

    // MARK: 8. the caret hint in JSON

    @Test func jsonDiagnosticGivesTheRegexOffsetAsANumber() throws {
        let f = try CLI.temp("re.yaml", """
        version: 1
        listeners: [{id: main, address: "127.0.0.1:8080"}]
        routes:
          - id: a
            match: {path: {regex: "^/v1/(users"}}
            respond: {status: 200}
        """)
        let r = try CLI.prox(["validate", "--format", "json", f])
        #expect(r.status == 1)
        let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        let d = try #require((doc?["diagnostics"] as? [[String: Any]])?.first)
        #expect(d["offset"] as? Int == 11, "\(d)")
        #expect(d["pattern"] as? String == "^/v1/(users")
        #expect(!((d["hint"] as? String) ?? "").contains("^"), "no caret laid out for a terminal in JSON: \(d)")
        // The terminal keeps its caret.
        let text = try CLI.prox(["validate", f])
        #expect(text.out.contains("  hint: ^/v1/(users\n" + String(repeating: " ", count: 8 + 11) + "^"), "\(text.out)")
    }

    // MARK: 1. prox check

    @Test func checkRouteNullAssertsThatNoRouteMatched() throws {
        let f = try CLI.temp("t.yaml", """
        tests:
          - request: GET http://shop.example/healthz
            expect: {route: ~}
        """)
        let r = try CLI.prox(["check", "--config", "configs/basic.yaml", f])
        #expect(r.status == 1, "\(r.out)\(r.err)")
        #expect(r.out.contains("route: expected none, got health"), "\(r.out)")
    }

    @Test func checkUnknownExpectationKeysAreErrorsWithPositionAndSuggestion() throws {
        let f = try CLI.temp("t.yaml", """
        tests:
          - request: GET http://shop.example/healthz
            expect:
              rout: nope
              body: "x"
        """)
        let r = try CLI.prox(["check", "--config", "configs/basic.yaml", f])
        #expect(r.status == 2, "\(r.out)\(r.err)")
        #expect(r.err.contains("t.yaml:4:7: error: tests[0].expect.rout: unknown key 'rout'"), "\(r.err)")
        #expect(r.err.contains("did you mean 'route'?"), "\(r.err)")
        #expect(r.err.contains("t.yaml:5:7: error: tests[0].expect.body: unknown key 'body'"), "\(r.err)")
        #expect(!r.err.contains("DecodingError"))
        #expect(!r.out.contains("passed"), "no test runs from an invalid file")
    }

    @Test func checkFileTypeErrorsHavePositions() throws {
        let f = try CLI.temp("t.yaml", """
        tests:
          - request: GET http://shop.example/healthz
            expect: {status: ok}
        """)
        let r = try CLI.prox(["check", "--config", "configs/basic.yaml", f])
        #expect(r.status == 2)
        #expect(r.err.contains("t.yaml:3:22: error: tests[0].expect.status: expected an integer"), "\(r.err)")
    }

    @Test func checkResponseHeaderPresenceAsDocumented() throws {
        let f = try CLI.temp("t.yaml", """
        tests:
          - request: GET http://shop.example/cart
            expect: {route: app, response_headers_present: [X-Request-Id], response_headers_absent: [X-Powered-By]}
        """)
        let r = try CLI.prox(["check", "--config", "configs/basic.yaml", f])
        #expect(r.status == 0, "\(r.out)\(r.err)")
    }

    // MARK: 3. a busy port

    @Test func busyPortNamesTheListenerAndAddressAndWhatToDo() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        #expect(listen(fd, 1) == 0)
        let port = Int(UInt16(bigEndian: a.sin_port))
        let f = try CLI.temp("busy.yaml", CLI.helloConfig(port: port, body: "x"))
        let r = try CLI.prox(["serve", "--config", f, "--threads", "1", "--no-watch"])
        #expect(r.status == 1, "\(r.err)")
        #expect(r.err.contains("listener 'main' (listeners[0]) cannot listen on 127.0.0.1:\(port): the address is already in use"), "\(r.err)")
        #expect(r.err.contains("ss -ltnp"), "\(r.err)")
        #expect(!r.err.contains("errno"), "no raw system call error: \(r.err)")
    }

    // MARK: 10. --pid-file, for the README's signals

    @Test func pidFileNamesThisProcessAndIsRemovedAfterTheDrain() throws {
        let port = CLI.freePort()
        let f = try CLI.temp("serve.yaml", CLI.helloConfig(port: port, body: "one"))
        let pidFile = (f as NSString).deletingLastPathComponent + "/prox.pid"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["serve", "--config", f, "--threads", "1", "--no-watch", "--pid-file", pidFile]
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        #expect(try CLI.get(port) == "one")
        // Written right after the listeners bind, so a moment after the first answer at most.
        #expect(try CLI.eventually { FileManager.default.fileExists(atPath: pidFile) })
        let text = try String(contentsOfFile: pidFile, encoding: .utf8)
        #expect(text == "\(p.processIdentifier)\n")
        kill(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))!, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: pidFile))
    }
}
