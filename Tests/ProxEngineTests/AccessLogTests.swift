import Foundation
@testable import ProxEngine
import Testing

@Suite("Access log: dropped_headers")
struct AccessLogDroppedHeadersTests {
    /// (dropped count, the text expected in the line, or nil when the field is left out)
    @Test(arguments: [(0, String?.none), (1, ",\"dropped_headers\":1}"), (37, ",\"dropped_headers\":37}")])
    func field(dropped: Int, expected: String?) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("prox-al-\(UUID().uuidString)").path
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        let log = AccessLog(fd: fd)
        log.write(AccessLog.Entry(requestID: "", client: "127.0.0.1", method: "GET", host: "a", path: "/", route: "r", pool: "",
                                  endpoint: "", status: 200, bytesIn: 0, bytesOut: 0, durationMicros: 1, upstreamMicros: -1,
                                  error: "", droppedHeaders: dropped))
        log.flush()
        let line = try String(contentsOfFile: path, encoding: .utf8)
        if let expected {
            #expect(line.hasSuffix(expected + "\n"), "\(line)")
        } else {
            #expect(!line.contains("dropped_headers"), "\(line)")
        }
    }
}
