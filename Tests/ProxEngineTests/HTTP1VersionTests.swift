import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

@Suite("HTTP1 versions")
struct HTTP1VersionTests {
    /// (version text, minor the head carries, or the error status)
    static let requestCases: [(String, UInt8?, Int?)] = [
        ("HTTP/1.0", 0, nil),
        ("HTTP/1.1", 1, nil),
        // RFC 9110 6.2: a higher minor of a major we implement is handled as the highest we know.
        ("HTTP/1.2", 1, nil),
        ("HTTP/1.9", 1, nil),
        ("HTTP/2.0", nil, 505),
        ("HTTP/3.1", nil, 505),
        ("HTTP/0.9", nil, 505),
        ("HTTP/1.10", nil, 400),
        ("http/1.1", nil, 400),
        ("HTTP/1", nil, 400),
        ("HTTP/1.", nil, 400),
        ("HTTP/1.x", nil, 400),
        ("HTTP/1,1", nil, 400),
        ("", nil, 400), // HTTP/0.9 simple request: no version at all
    ]

    @Test(arguments: requestCases)
    func requestVersion(version: String, minor: UInt8?, status: Int?) {
        let line = version.isEmpty ? "GET /" : "GET / " + version
        let r = runRequest(line + "\r\nHost: a\r\n\r\n")
        #expect(r.error?.status == status, "\(version)")
        if let minor {
            #expect(r.heads.first?.versionMinor == minor, "\(version)")
            // Keep-alive by default and Host required, as for 1.1.
            if minor == 1 {
                #expect(r.heads.first?.keepAlive == true)
                #expect(runRequest("GET / \(version)\r\n\r\n").error?.category == HTTP1ParseError.missingHost)
            }
        }
    }

    /// A higher 1.x request is written upstream as HTTP/1.1.
    @Test func higherMinorGoesUpstreamAs11() {
        let r = runRequest("GET /x HTTP/1.2\r\nHost: a\r\n\r\n")
        var out = ByteBuffer()
        HTTP1Writer.writeRequestHead(r.head, framing: .none, into: &out)
        #expect(String(buffer: out).hasPrefix("GET /x HTTP/1.1\r\n"))
    }

    /// (status-line version, minor the head carries, or nil when refused with 502)
    static let responseCases: [(String, UInt8?)] = [
        ("HTTP/1.0", 0), ("HTTP/1.1", 1), ("HTTP/1.2", 1), ("HTTP/1.9", 1),
        ("HTTP/2.0", nil), ("HTTP/0.9", nil), ("HTTP/1.10", nil), ("http/1.1", nil),
    ]

    @Test(arguments: responseCases)
    func responseVersion(version: String, minor: UInt8?) {
        let r = runResponse(version + " 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if let minor {
            #expect(r.error == nil, "\(version)")
            #expect(r.heads.first?.versionMinor == minor, "\(version)")
            #expect(r.body == "ok")
        } else {
            #expect(r.error?.status == 502, "\(version)")
        }
    }
}
