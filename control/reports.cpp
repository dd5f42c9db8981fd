#include "control/reports.hpp"

#include <utility>

namespace segwire::control {

std::string FlowReport::key() const {
    std::string k;
    for (const std::string *s : {&action, &observed_action, &source_type, &source_id, &source_ip,
                                 &destination_type, &destination_id, &destination_ip, &policy_id,
                                 &observed_policy_id, &rule_name, &drop_reason, &mode}) {
        k += *s;
        k += '\x1f';
    }
    return k + std::to_string(destination_port) + "/" + std::to_string(protocol);
}

std::string DnsReport::key() const {
    std::string k = processing_unit_id + '\x1f' + source_ip + '\x1f' + resolved_name + '\x1f' +
                    action + '\x1f' + reason + '\x1f';
    for (const auto &ip : resolved_ips) k += ip + ',';
    k += '\x1f';
    for (const auto &c : resolved_cnames) k += c + ',';
    return k;
}

template <class Report>
void ReportBook::Keyed<Report>::add(const std::string &key, Report r) {
    if (auto it = map.find(key); it != map.end()) {
        it->second.add_counts(r);
    } else if (map.size() < max) {
        map.emplace(key, std::move(r));
    } else {
        ++overflow;
    }
}

template <class Report>
std::vector<Report> ReportBook::Keyed<Report>::take() {
    std::vector<Report> out;
    out.reserve(map.size());
    for (auto &[k, r] : map) out.push_back(std::move(r));
    map.clear();
    return out;
}

ReportBook::ReportBook(ReportLimits limits)
    : flows_{{}, limits.per_interval},
      flowlog_{{}, limits.flowlog},
      dns_{{}, limits.per_interval},
      exceptions_max_(limits.per_interval) {}

void ReportBook::add_flow(FlowReport r) {
    const std::string key = r.key();
    std::lock_guard<std::mutex> lock(mu_);
    flows_.add(key, r);
    flowlog_.add(key, std::move(r));
}

void ReportBook::add_exception(ExceptionReport r) {
    std::lock_guard<std::mutex> lock(mu_);
    if (exceptions_.size() < exceptions_max_)
        exceptions_.push_back(std::move(r));
    else
        ++exceptions_overflow_;
}

void ReportBook::add_dns(DnsReport r) {
    const std::string key = r.key();
    std::lock_guard<std::mutex> lock(mu_);
    dns_.add(key, std::move(r));
}

std::vector<FlowReport> ReportBook::take_flows() {
    std::lock_guard<std::mutex> lock(mu_);
    return flows_.take();
}

std::vector<ExceptionReport> ReportBook::take_exceptions() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(exceptions_, {});
}

std::vector<DnsReport> ReportBook::take_dns() {
    std::lock_guard<std::mutex> lock(mu_);
    return dns_.take();
}

std::vector<FlowReport> ReportBook::flowlog() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<FlowReport> out;
    out.reserve(flowlog_.map.size());
    for (const auto &[k, r] : flowlog_.map) out.push_back(r);
    return out;
}

ReportCounts ReportBook::counts() const {
    std::lock_guard<std::mutex> lock(mu_);
    ReportCounts c;
    c.flows = flows_.count();
    c.flowlog = flowlog_.count();
    c.dns = dns_.count();
    c.exceptions = {exceptions_.size(), exceptions_max_, exceptions_overflow_};
    return c;
}

}  // namespace segwire::control
