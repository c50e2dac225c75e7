// Runs the webhook script of pagerbridge_media_type.yaml outside Zabbix, the way Zabbix would:
// the parameters with their macros replaced, a stand-in for Zabbix's HttpRequest that records
// the request, and Zabbix.log. Prints the requests (or errors) as JSON, one per scenario.
//
//   node contrib/zabbix/selftest.js [scenarios.json] [--status 500]
//
// A scenario is {"name": ..., "macros": {"{EVENT.ID}": "5021", ...}}; macros not given stay as
// written, as Zabbix leaves a macro it cannot resolve. Without a file, the built-in scenarios
// run (the ones the fixtures of crates/ingest/tests/fixtures/zabbix were made from).
'use strict';

const fs = require('fs');
const path = require('path');

function loadMediaType(file) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const params = [];
    let script = null;
    for (let i = 0; i < lines.length; i++) {
        const name = /^ {10}name: (\S+)$/.exec(lines[i]);
        const value = i + 1 < lines.length && /^ {10}value: '(.*)'$/.exec(lines[i + 1]);
        if (name && value) {
            params.push({name: name[1], value: value[1].replace(/''/g, "'")});
        }
        if (/^ {6}script: \|$/.test(lines[i])) {
            const body = [];
            for (i++; i < lines.length && (lines[i] === '' || lines[i].startsWith('        ')); i++) {
                body.push(lines[i].substring(8));
            }
            i--;
            script = body.join('\n');
        }
    }
    if (script === null) {
        throw new Error('no script in ' + file);
    }
    return {params, script};
}

function run(mediaType, macros, httpStatus) {
    const value = {};
    for (const p of mediaType.params) {
        value[p.name] = p.value.replace(/\{\$?[A-Z0-9_.#]+\}/g, (m) => (m in macros ? macros[m] : m));
    }
    const requests = [];
    function HttpRequest() {
        this.headers = [];
    }
    HttpRequest.prototype.addHeader = function (h) { this.headers.push(h); };
    HttpRequest.prototype.setProxy = function (p) { this.proxy = p; };
    HttpRequest.prototype.post = function (url, body) {
        requests.push({url, headers: this.headers, proxy: this.proxy, body: JSON.parse(body)});
        this.status = httpStatus;
        return httpStatus < 300 ? '{"status":"accepted"}' : '{"error":"test"}';
    };
    HttpRequest.prototype.getStatus = function () { return this.status; };
    const Zabbix = {log: () => {}};
    const fn = new Function('value', 'HttpRequest', 'Zabbix', mediaType.script);
    try {
        const result = fn(JSON.stringify(value), HttpRequest, Zabbix);
        return {result, requests};
    } catch (error) {
        return {error: String(error), requests};
    }
}

const common = {
    '{$ZABBIX.URL}': 'https://zabbix.example.com/',
    '{ALERT.SENDTO}': 'abcdefabcdefabcdefabcdefabcdef12',
    '{EVENT.ID}': '5021',
    '{EVENT.SOURCE}': '0',
    '{EVENT.NAME}': 'High CPU utilization (over 90% for 5m)',
    '{EVENT.SEVERITY}': 'High',
    '{EVENT.NSEVERITY}': '4',
    '{EVENT.DATE}': '2026.11.21',
    '{EVENT.TIME}': '08:10:00',
    '{EVENT.TIMESTAMP}': '1795248600',
    '{EVENT.OPDATA}': 'Current utilization: 97.3 %',
    '{EVENT.TAGSJSON}': '[{"tag":"class","value":"os"},{"tag":"component","value":"cpu"},{"tag":"scope","value":"performance"},{"tag":"component","value":"load"}]',
    '{EVENT.TAGS}': 'class:os, component:cpu, scope:performance, component:load',
    '{TRIGGER.ID}': '17500',
    '{TRIGGER.NAME}': 'High CPU utilization (over 90% for 5m)',
    '{TRIGGER.DESCRIPTION}': 'CPU utilization is too high. The system might be slow to respond.',
    '{HOST.NAME}': 'db1',
    '{HOST.HOST}': 'db1.example.com',
    '{HOST.IP}': '10.0.0.5',
    '{ITEM.NAME1}': 'CPU utilization',
    '{ITEM.KEY1}': 'system.cpu.util',
    '{ITEM.VALUE1}': '97.3 %',
};

const scenarios = [
    {name: 'problem', macros: {...common, '{EVENT.VALUE}': '1', '{EVENT.STATUS}': 'PROBLEM', '{EVENT.AGE}': '0m', '{EVENT.ACK.STATUS}': 'No', '{EVENT.UPDATE.STATUS}': '0'}},
    {name: 'update_acknowledge', macros: {...common, '{EVENT.VALUE}': '1', '{EVENT.STATUS}': 'PROBLEM', '{EVENT.AGE}': '4m 12s', '{EVENT.ACK.STATUS}': 'Yes', '{EVENT.UPDATE.STATUS}': '1',
        '{EVENT.UPDATE.ACTION}': 'acknowledged, commented', '{EVENT.UPDATE.MESSAGE}': 'Looking into it, see INC-42', '{USER.FULLNAME}': 'Alice Admin (alice)',
        '{EVENT.UPDATE.DATE}': '2026.11.21', '{EVENT.UPDATE.TIME}': '08:14:12'}},
    {name: 'update_comment', macros: {...common, '{EVENT.VALUE}': '1', '{EVENT.STATUS}': 'PROBLEM', '{EVENT.AGE}': '6m', '{EVENT.ACK.STATUS}': 'Yes', '{EVENT.UPDATE.STATUS}': '1',
        '{EVENT.UPDATE.ACTION}': 'commented', '{EVENT.UPDATE.MESSAGE}': 'Load is from the nightly backup', '{USER.FULLNAME}': 'Bob Ops (bob)',
        '{EVENT.UPDATE.DATE}': '2026.11.21', '{EVENT.UPDATE.TIME}': '08:16:00'}},
    {name: 'recovery', macros: {...common, '{EVENT.VALUE}': '0', '{EVENT.STATUS}': 'RESOLVED', '{EVENT.AGE}': '10m', '{EVENT.ACK.STATUS}': 'Yes', '{EVENT.UPDATE.STATUS}': '0',
        '{EVENT.RECOVERY.ID}': '5034', '{EVENT.RECOVERY.DATE}': '2026.11.21', '{EVENT.RECOVERY.TIME}': '08:20:00'}},
];

const args = process.argv.slice(2);
let status = 202;
const statusAt = args.indexOf('--status');
if (statusAt >= 0) {
    status = Number(args[statusAt + 1]);
    args.splice(statusAt, 2);
}
const mediaType = loadMediaType(path.join(__dirname, 'pagerbridge_media_type.yaml'));
const chosen = args.length > 0 ? JSON.parse(fs.readFileSync(args[0], 'utf8')) : scenarios;
const out = chosen.map((s) => ({name: s.name, ...run(mediaType, s.macros, status)}));
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
