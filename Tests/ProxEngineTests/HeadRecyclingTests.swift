import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

/// A finished head's arrays are handed back to its parser and reused for a later head on the
/// same connection; the later head must read exactly its own lines.
struct HeadRecyclingTests {
    func nextHead(_ parser: inout HTTP1RequestParser, _ text: String) -> RequestHead? {
        var buf = ByteBuffer(string: text)
        while let ev = parser.next(&buf) {
            if case .head(let h) = ev { return h }
        }
        return nil
    }

    @Test func recycledRequestArraysCarryNothingOver() throws {
        var parser = HTTP1RequestParser()
        var heads: [RequestHead] = []
        for i in 0..<4 {
            let extra = (0..<(4 - i)).map { "X-Line-\($0): v\(i)\r\n" }.joined()
            var h = try #require(nextHead(&parser, "GET /\(i) HTTP/1.1\r\nHost: h\(i)\r\n\(extra)\r\n"))
            #expect(lines(h.fields) == ["Host: h\(i)"] + (0..<(4 - i)).map { "X-Line-\($0): v\(i)" })
            h.fields.add(HeaderName("X-Added"), "a\(i)")
            #expect(String(decoding: h.fields.addedBytes, as: UTF8.self) == "X-Added: a\(i)\r\n")
            heads.append(h)
            parser.recycle(&heads[heads.count - 1].fields)
            #expect(heads[heads.count - 1].fields.slots.isEmpty && heads[heads.count - 1].fields.addedBytes.isEmpty)
        }
    }

    @Test func recycledResponseArraysCarryNothingOver() {
        var parser = HTTP1ResponseParser()
        for i in 0..<4 {
            parser.reset(requestMethod: .get)
            var buf = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-R: \(i)\r\n\r\n")
            var got: ResponseHead?
            while let ev = parser.next(&buf) { if case .head(let h) = ev { got = h } }
            guard var h = got else { Issue.record("no head"); return }
            #expect(h.fields.first(HeaderName("X-R")) == "\(i)")
            #expect(h.fields.addedBytes.isEmpty)
            h.fields.add(.xRequestID, "r\(i)")
            parser.recycle(&h.fields)
        }
    }
}
