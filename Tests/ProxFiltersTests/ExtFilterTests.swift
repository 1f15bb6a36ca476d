import Foundation
import NIOCore
import ProxConfig
import ProxCore
import Testing
@testable import ProxFilters

@Suite struct ExtFilterTests {
    static func answer(_ status: Int, _ text: String) -> ExtFilterAnswer {
        var b = ByteBuffer()
        b.writeString(text)
        return ExtFilterAnswer(status: status, body: b)
    }

    /// (service status, answer body, expected: "continue r/s/a" with edit counts, "respond N", or the failure category)
    @Test(arguments: [
        (204, "", "continue 0/0/0"),
        (200, "", "continue 0/0/0"),
        (200, "{}", "continue 0/0/0"),
        (200, #"{"action":"continue"}"#, "continue 0/0/0"),
        (200, #"{"action":"continue","remove_headers":["Cookie"],"set_headers":{"X-User":"a","X-Role":"b"},"add_headers":{"X-Tag":"t"}}"#, "continue 1/2/1"),
        (200, #"{"action":"respond","status":403,"headers":{"X-Why":"no"},"body":"denied"}"#, "respond 403"),
        (200, #"{"action":"respond","status":302,"headers":{"Location":"/login"}}"#, "respond 302"),
        (200, #"{"action":"respond","status":99}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"respond","status":403.5}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"respond"}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"respond","status":403,"body":5}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"maybe"}"#, "ext_filter_bad_answer"),
        (200, #"{"set_headers":{"X-A":"1"}}"#, "ext_filter_bad_answer"),
        (200, "not json", "ext_filter_bad_answer"),
        (200, "[1,2]", "ext_filter_bad_answer"),
        (500, #"{"action":"continue"}"#, "ext_filter_bad_answer"),
        (403, "", "ext_filter_bad_answer"),
        (200, #"{"action":"continue","set_headers":{"Content-Length":"1"}}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"continue","set_headers":{"Host":"evil"}}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"continue","set_headers":{"X-A":"1\r\nX-B: 2"}}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"continue","set_headers":{"X A":"1"}}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"continue","set_headers":{"X-A":1}}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"continue","remove_headers":"Cookie"}"#, "ext_filter_bad_answer"),
        (200, #"{"action":"respond","status":200,"headers":{"Transfer-Encoding":"chunked"}}"#, "ext_filter_bad_answer"),
    ] as [(Int, String, String)])
    func decodesVerdicts(_ status: Int, _ body: String, _ expected: String) {
        switch ExtFilterMessage.decode(Self.answer(status, body)) {
        case .success(.proceed(let remove, let set, let add)):
            #expect(expected == "continue \(remove.count)/\(set.count)/\(add.count)")
        case .success(.respond(let r)):
            #expect(expected == "respond \(r.status)")
        case .failure(let f):
            #expect(expected == f.category, "\(f.detail)")
        }
    }

    @Test func requestIsJSONWithTheHeadAndTheBodyStart() throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain: [{ext_filter: {url: "http://127.0.0.1:9000/check?x=1", max_body_bytes: 4}}]
            proxy: up
        """)))
        let ctx = request(s, .post, "/a/b?q=\"1\"", headers: [("X-Quote", "say \"hi\"\\"), ("Content-Length", "6")])
        ctx.requestID = "rid-1"
        var body = ByteBuffer()
        body.writeString("abcd")
        ctx.requestBody = body
        ctx.requestBodyComplete = false
        var wire = ExtFilterMessage.request(ctx, sendBody: true, allocator: ByteBufferAllocator())
        let text = wire.readString(length: wire.readableBytes)!
        let o = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(o["version"] as? Int == 1)
        #expect(o["request_id"] as? String == "rid-1")
        #expect(o["route"] as? String == "r")
        #expect(o["method"] as? String == "POST")
        #expect(o["target"] as? String == "/a/b?q=\"1\"")
        #expect(o["path"] as? String == "/a/b")
        #expect(o["host"] as? String == "example.com")
        let headers = try #require(o["headers"] as? [[String]])
        #expect(headers.contains(["X-Quote", "say \"hi\"\\"]))
        let b = try #require(o["body"] as? [String: Any])
        #expect(b["base64"] as? String == "YWJjZA==")
        #expect(b["bytes"] as? Int == 4)
        #expect(b["complete"] as? Bool == false)
        #expect(ExtFilterMessage.quoted("a\u{1}\n\t\u{7f}é") == #""a\u0001\n\t\u007fé""#)
        // obs-text that is not UTF-8 becomes U+FFFD: the JSON still parses.
        var repaired = ByteBuffer()
        [UInt8]([0x61, 0xFF, 0x62]).withUnsafeBytes { ExtFilterMessage.writeQuoted(bytes: $0, &repaired) }
        #expect(repaired.readString(length: repaired.readableBytes) == "\"a\u{FFFD}b\"")
    }

    @Test func dryRunDoesNotCallAndSaysWhatItWouldAsk() throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain: [{ext_filter: {url: "http://127.0.0.1:9/check", fail_mode: open}}]
            proxy: up
        """)))
        let ctx = request(s, .get, "/")
        ctx.dryRun = true
        let (v, ran) = runRequest(ctx)
        #expect(v.isNext)
        #expect(ran == 1)
        let entry = try #require(ctx.trace?.entries.last)
        #expect(entry.decided == "not called in dry-run: assumed continue")
        #expect(entry.looked == "POST http://127.0.0.1:9/check with the head")
        #expect(entry.why.contains("fail_mode open"))
    }

    @Test func theBodyCapIsTheStagesBodyBuffer() throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain:
              - request_id: {}
              - ext_filter: {url: "http://127.0.0.1:9/check", max_body_bytes: 64KiB}
            proxy: up
        """)))
        #expect(s.routes[0].chain.bodyBufferAt == 1)
        #expect(s.routes[0].chain.bodyBufferBytes == 65536)
        let plain = try #require(snapshot(config("""
          - id: r
            chain: [{ext_filter: {url: "http://127.0.0.1:9/check"}}]
            proxy: up
        """)))
        #expect(plain.routes[0].chain.bodyBufferAt == 1, "no stage needs the body: past the end")
    }

    @Test(arguments: [
        ("{}", "routes[0].chain[0].ext_filter", "missing required key 'url'"),
        ("{url: \"https://a:1/x\"}", "routes[0].chain[0].ext_filter.url", "https is not supported"),
        ("{url: \"ftp://a/x\"}", "routes[0].chain[0].ext_filter.url", "is not an http:// URL"),
        ("{url: \"http://a:99999/x\"}", "routes[0].chain[0].ext_filter.url", "bad host or port"),
        ("{url: \"http://a b/x\"}", "routes[0].chain[0].ext_filter.url", "bad host or port"),
        ("{url: \"http://a/x y\"}", "routes[0].chain[0].ext_filter.url", "spaces"),
        ("{url: \"http://a/x\", fail_mode: maybe}", "routes[0].chain[0].ext_filter.fail_mode", "closed"),
        ("{url: \"http://a/x\", max_body_bytes: 2MiB}", "routes[0].chain[0].ext_filter.max_body_bytes", "out of range"),
        ("{url: \"http://a/x\", timeout: 0ms}", "routes[0].chain[0].ext_filter.timeout", "out of range"),
        ("{url: \"http://a/x\", failure_status: 200}", "routes[0].chain[0].ext_filter.failure_status", "out of range"),
    ])
    func configErrors(_ filter: String, _ path: String, _ message: String) {
        let errs = errors(config("""
          - id: r
            chain: [{ext_filter: \(filter)}]
            proxy: up
        """))
        #expect(errs.count == 1, "\(errs)")
        #expect(errs.first?.path == path, "\(errs)")
        #expect(errs.first?.message.contains(message) == true, "\(errs)")
    }

    @Test(arguments: [
        ("http://127.0.0.1:9000/check", "127.0.0.1", 9000, "/check", "127.0.0.1:9000"),
        ("http://filters.internal/v1/check?a=b", "filters.internal", 80, "/v1/check?a=b", "filters.internal"),
        ("http://[::1]:81", "::1", 81, "/", "[::1]:81"),
        ("HTTP://Svc:8080?x", "svc", 8080, "/?x", "Svc:8080"),
    ] as [(String, String, Int, String, String)])
    func urls(_ text: String, _ host: String, _ port: Int, _ path: String, _ hostHeader: String) throws {
        let u = try ExtFilterURL.parse(text).get()
        #expect(u == ExtFilterURL(host: host, port: port, path: path, hostHeader: hostHeader))
    }
}
