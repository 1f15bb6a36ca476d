import ProxConfig
@testable import ProxCore
import ProxFilters
import Testing

@Suite struct RequestIDTests {
    static func isHexID(_ s: String) -> Bool {
        s.utf8.count == 32 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var config: String
        var incoming: String?
        var kept: Bool
        var testDescription: String { "\(config) with \(incoming ?? "no id")" }
    }

    @Test(arguments: [
        Case(config: "request_id", incoming: nil, kept: false),
        Case(config: "request_id", incoming: "abc-123", kept: false),
        Case(config: "{request_id: {trust_incoming: true}}", incoming: nil, kept: false),
        Case(config: "{request_id: {trust_incoming: true}}", incoming: "abc-123", kept: true),
        Case(config: "{request_id: {trust_incoming: true}}", incoming: "has space", kept: false),
        Case(config: "{request_id: {trust_incoming: true}}", incoming: "a,b", kept: false),
        Case(config: "{request_id: {trust_incoming: true}}", incoming: String(repeating: "x", count: 129), kept: false),
        Case(config: "{request_id: {trust_incoming: true}}", incoming: String(repeating: "x", count: 128), kept: true),
    ])
    func keepsOrGenerates(_ c: Case) throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain: [\(c.config)]
            proxy: up
        """)))
        let ctx = request(s, headers: c.incoming.map { [("X-Request-Id", $0)] } ?? [])
        let (v, ran) = runRequest(ctx)
        #expect(v.isNext && ran == 1)
        if c.kept {
            #expect(ctx.requestID == c.incoming)
        } else {
            #expect(Self.isHexID(ctx.requestID), "\(ctx.requestID)")
        }
        // The upstream request carries exactly one id: the one chosen.
        #expect(ctx.head.fields.all(.xRequestID) == [ctx.requestID])
        // And the response too.
        let resp = runResponse(ctx, ran: ran, headers: [("X-Request-Id", "from-upstream")])
        #expect(resp.fields.all(.xRequestID) == [ctx.requestID])
        #expect(ctx.trace?.entries.first?.stage == "request_id")
    }

    @Test func customHeaderAndNoResponseHeader() throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain:
              - request_id: {header: X-Trace, set_response_header: false}
            proxy: up
        """)))
        let ctx = request(s)
        let (_, ran) = runRequest(ctx)
        #expect(ctx.head.header(HeaderName("x-trace")) == ctx.requestID)
        #expect(ctx.head.header(.xRequestID) == nil)
        #expect(s.routes[0].chain.responseStages.isEmpty)
        let resp = runResponse(ctx, ran: ran)
        #expect(resp.header(HeaderName("X-Trace")) == nil)
    }

    /// A route of `request_id` then `headers` with `edits`, and a request through it as the
    /// engine runs one: no trace (tracing takes another path through the stages).
    static func untraced(_ edits: String) throws -> (Snapshot, RequestContext) {
        let s = try #require(snapshot(config("""
          - id: r
            chain:
              - request_id
              - headers: \(edits)
            proxy: up
        """)))
        let head = RequestHead.make(method: .get, target: "/", headers: [("Host", "example.com"), ("X-Request-Id", "from-client")])
        let ctx = RequestContext(head: head, snapshot: s, listener: s.listeners[0], client: IPAddress("127.0.0.1")!,
                                 clientPort: 40000, eventLoop: nil)
        ctx.route = s.routes[0]
        return (s, ctx)
    }

    /// On the hot path a generated id is kept as its digits and lent to each header line: every
    /// line shows the same id, and no `String` is made until one is read.
    @Test func aGeneratedIDIsWrittenWithoutAString() throws {
        let (_, ctx) = try Self.untraced(#"{request: {set: {X-Copy: "{request_id}"}, add: {X-Added: "{request_id}"}}, response: {set: {X-Copy: "{request_id}"}}}"#)
        #expect(!ctx.hasRequestID)
        let (v, ran) = runRequest(ctx)
        #expect(v.isNext && ran == 2)
        let id = try #require(ctx.generatedRequestID)
        #expect(ctx.requestIDText.isEmpty, "no String made on the way")
        #expect(ctx.hasRequestID)
        #expect(Self.isHexID(id.text))
        #expect(ctx.head.fields.all(.xRequestID) == [id.text])
        #expect(ctx.head.fields.all(HeaderName("X-Copy")) == [id.text])
        #expect(ctx.head.fields.all(HeaderName("X-Added")) == [id.text])
        let resp = runResponse(ctx, ran: ran, headers: [("X-Request-Id", "from-upstream")])
        #expect(resp.fields.all(.xRequestID) == [id.text])
        #expect(resp.fields.all(HeaderName("X-Copy")) == [id.text])
        #expect(ctx.requestIDText.isEmpty)
        // Read as a String: the same id, and made once.
        #expect(ctx.requestID == id.text)
        #expect(ctx.requestIDText == id.text)
        #expect(ctx.generatedRequestID == id)
        // An id set as text replaces the generated one everywhere after.
        ctx.requestID = "set-by-a-stage"
        #expect(ctx.generatedRequestID == nil)
        let again = runResponse(ctx, ran: ran)
        #expect(again.fields.all(.xRequestID) == ["set-by-a-stage"])
        #expect(again.fields.all(HeaderName("X-Copy")) == ["set-by-a-stage"])
        ctx.generatedRequestID = id
        #expect(ctx.requestID == id.text)
    }

    /// A template with more than the id reads it as a String: the same id.
    @Test func aTemplateAroundTheIDReadsTheSameID() throws {
        let (_, ctx) = try Self.untraced(#"{request: {set: {X-Both: "id={request_id}"}}}"#)
        _ = runRequest(ctx)
        let id = try #require(ctx.generatedRequestID)
        #expect(ctx.head.fields.all(HeaderName("X-Both")) == ["id=" + id.text])
        #expect(ctx.head.fields.all(.xRequestID) == [id.text])
    }

    @Test func generatedDigitsAreTheBitsInHex() {
        var rng = SplitMix64(seed: 5)
        for _ in 0..<500 {
            let (high, low) = (rng.next(), rng.next())
            let g = RequestID.Generated(high: high, low: low)
            let hex = { (v: UInt64) in String(repeating: "0", count: 16 - String(v, radix: 16).count) + String(v, radix: 16) }
            #expect(g.text == hex(high) + hex(low))
            #expect(g == RequestID.Generated(high: high, low: low))
            #expect(g != RequestID.Generated(high: high, low: low ^ 1))
            #expect(g.withDigits { String(decoding: $0, as: UTF8.self) } == g.text)
        }
    }

    @Test func hexDigitsAreTheNumberInLowercaseHex() {
        var rng = SplitMix64(seed: 3)
        let edges: [UInt32] = [0, 1, 9, 10, 15, 16, 0x0F0F_0F0F, 0x9A9A_9A9A, 0xFFFF_FFFF, 0x1234_5678, 0xABCD_EF01]
        for v in edges + (0..<2000).map({ _ in UInt32(truncatingIfNeeded: rng.next()) }) {
            let word = RequestID.hexDigits(v)
            let text = withUnsafeBytes(of: word) { String(decoding: $0, as: UTF8.self) }
            let want = String(repeating: "0", count: 8 - String(v, radix: 16).count) + String(v, radix: 16)
            #expect(text == want, "\(v)")
        }
    }

    @Test func idsAreUnique() {
        var seen = Set<String>()
        for _ in 0..<20_000 { seen.insert(RequestID.generate()) }
        #expect(seen.count == 20_000)
    }

    @Test func traceSaysWhy() throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain: [request_id]
            proxy: up
        """)))
        let ctx = request(s, headers: [("X-Request-Id", "mine")])
        _ = runRequest(ctx)
        let e = try #require(ctx.trace?.entries.first)
        #expect(e.looked == "X-Request-Id: mine")
        #expect(e.why == "incoming ids are not trusted")
    }

    @Test func configErrors() {
        let errs = errors(config("""
          - id: r
            chain:
              - request_id: {header: "X Request", trust_incoming: "yes", set_response: true}
            proxy: up
        """))
        #expect(errs.map(\.path) == ["routes[0].chain[0].request_id.header", "routes[0].chain[0].request_id.trust_incoming",
                                     "routes[0].chain[0].request_id.set_response"])
        #expect(errs[0].message == "'X Request' is not a valid header name")
        #expect(errs[1].message == "expected true or false, found a string")
        #expect(errs[1].hint == "write true or false")
        #expect(errs[2].hint == "did you mean 'set_response_header'?")
    }
}
