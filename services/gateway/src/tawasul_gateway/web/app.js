// The citizen's page: everything it shows comes from the gateway's JSON API (proto3 JSON of
// intake's and docs' messages); every rule is the server's, and its messages are shown as sent.
"use strict";

const TEXTS = {
  ar: {
    title: "تواصل",
    site: "تواصل — المديرية العامة للجوازات",
    "nav.new": "طلب جديد",
    "nav.mine": "طلباتي",
    "nav.track": "الاستعلام عن طلب",
    "nav.bulk": "رفع طلبات جماعية",
    "bulk.title": "رفع طلبات العمالة من ملف CSV",
    // The column names isolated left to right (U+2066…U+2069): "field." keeps its dot after it.
    "bulk.help": "احفظ الملف بنوع \u2066CSV UTF-8\u2069 (في Excel من «حفظ باسم»). صف لكل طلب: \u2066subject_id\u2069، \u2066sub_service_code\u2069، \u2066description\u2069، \u2066mobile\u2069، وحقول الخدمة بالبادئة \u2066field.\u2069، ورقم الطلب المرفوض الذي يصححه الصف (اختياري) في \u2066cites_request_number\u2069. — رفع الملف نفسه مرة أخرى لا ينشئ طلبًا مكررًا.",
    "bulk.file": "ملف CSV",
    "bulk.send": "رفع الملف",
    "bulk.row": "الصف",
    "bulk.result": "النتيجة",
    "bulk.filed": "طلبات مقدمة",
    "bulk.alreadyFiled": "مقدمة من قبل",
    "bulk.refused": "صفوف مرفوضة",
    signOut: "خروج",
    language: "English",
    "signIn.title": "الدخول",
    "signIn.help": "اختر شخصًا من سجل التطوير (بديل الدخول الموحد في بيئة التطوير).",
    "signIn.off": "الدخول يتم عبر النفاذ الوطني الموحد.",
    "new.title": "طلب جديد",
    "new.department": "القسم",
    "new.subService": "الخدمة الفرعية",
    "new.subject": "رقم هوية الشخص المعني بالطلب (اتركه فارغًا إن كان الطلب يخصك)",
    "new.description": "وصف المشكلة بدقة",
    "new.mobile": "رقم الجوال",
    "new.email": "البريد الإلكتروني (اختياري)",
    "new.submit": "إرسال الطلب",
    "new.sending": "جارٍ الإرسال…",
    "new.done": "تم استلام طلبك",
    "new.open": "عرض الطلب",
    "new.choose": "اختر…",
    "new.documents": "المرفقات",
    "new.required": "(مطلوب)",
    "script.latin": "بالأحرف اللاتينية كما في جواز السفر، ولا يُقبل معها إلا المسافات والفواصل العليا (') والشرطات (-).",
    "script.arabic": "بالحروف العربية، ولا يُقبل معها إلا المسافات والفواصل العليا (') والشرطات (-).",
    "new.uploaded": "تم الرفع",
    "new.sla": "مدة الإنجاز",
    "new.fee": "قد تترتب على هذه الخدمة رسوم.",
    "new.corrects": "يصحح الطلب المرفوض",
    "new.correctsHelp": "راجع البيانات وصححها، وأرفق المستندات من جديد.",
    "new.dropCorrection": "إلغاء الربط بالطلب المرفوض",
    "request.number": "رقم الطلب",
    "request.status": "الحالة",
    "request.department": "القسم",
    "request.expected": "موعد الإنجاز المتوقع",
    "request.expectedGregorian": "بالتاريخ الميلادي",
    "request.expectedHijri": "بالتاريخ الهجري",
    "request.decision": "رسالة الجوازات",
    "request.history": "سجل الطلب",
    "request.corrects": "يصحح الطلب",
    "request.correctedBy": "صُحّح بالطلب",
    "mine.title": "طلباتي",
    "mine.empty": "لا توجد طلبات بعد.",
    "mine.more": "المزيد",
    "respond.title": "مطلوب منك",
    "respond.by": "آخر موعد للرد",
    "respond.message": "ردك",
    "respond.file": "مرفق (PDF أو JPG)",
    "respond.send": "إرسال الرد",
    "actions.followUp": "متابعة الطلب",
    "actions.followUpFrom": "المتابعة متاحة من",
    "actions.cancel": "إلغاء الطلب",
    "actions.cancelReason": "سبب الإلغاء",
    "actions.appeal": "التظلم من قرار الرفض",
    "actions.appealReason": "سبب التظلم",
    "actions.correct": "تقديم طلب مصحح",
    "actions.done": "تم",
    "track.title": "الاستعلام عن طلب دون دخول",
    "track.id": "رقم الهوية أو الإقامة",
    "track.send": "إرسال رمز التحقق",
    "track.sent": "إذا تطابقت البيانات فسيصلك رمز تحقق برسالة نصية.",
    "track.code": "رمز التحقق",
    "track.show": "عرض حالة الطلب",
    "error.network": "تعذر الاتصال بالخدمة، حاول مرة أخرى.",
    "error.signIn": "سجّل الدخول أولًا.",
    "session.ended": "انتهت جلستك، سجّل الدخول مرة أخرى.",
  },
  en: {
    title: "Tawasul",
    site: "Tawasul — General Directorate of Passports",
    "nav.new": "New request",
    "nav.mine": "My requests",
    "nav.track": "Track a request",
    "nav.bulk": "Bulk filing",
    "bulk.title": "File your workers' requests from a CSV file",
    "bulk.help": "Save the file as CSV UTF-8 (in Excel, Save As). One row a request: subject_id, sub_service_code, description, mobile, the sub-service's fields as field.<name>, and optionally the rejected request the row corrects as cites_request_number. Uploading the same file again files nothing twice.",
    "bulk.file": "CSV file",
    "bulk.send": "Upload the file",
    "bulk.row": "Row",
    "bulk.result": "Result",
    "bulk.filed": "filed",
    "bulk.alreadyFiled": "filed before",
    "bulk.refused": "rows refused",
    signOut: "Sign out",
    language: "العربية",
    "signIn.title": "Sign in",
    "signIn.help": "Choose a person of the development registry (the single sign-on's stand-in).",
    "signIn.off": "Sign in through the national single sign-on.",
    "new.title": "New request",
    "new.department": "Department",
    "new.subService": "Sub-service",
    "new.subject": "ID number of the person concerned (empty if the request is about you)",
    "new.description": "A precise description of the problem",
    "new.mobile": "Mobile number",
    "new.email": "E-mail (optional)",
    "new.submit": "Submit the request",
    "new.sending": "Sending…",
    "new.done": "Your request was received",
    "new.open": "Open the request",
    "new.choose": "Choose…",
    "new.documents": "Attachments",
    "new.required": "(required)",
    "script.latin": "In Latin letters, as in the passport, with only spaces, apostrophes (') and hyphens (-) besides.",
    "script.arabic": "In Arabic letters, with only spaces, apostrophes (') and hyphens (-) besides.",
    "new.uploaded": "Uploaded",
    "new.sla": "Answered within",
    "new.fee": "A fee may apply to this service.",
    "new.corrects": "Corrects the rejected request",
    "new.correctsHelp": "Check and correct what it said, and attach the documents again.",
    "new.dropCorrection": "Do not link it to the rejected request",
    "request.number": "Request number",
    "request.status": "Status",
    "request.department": "Department",
    "request.expected": "Expected completion",
    "request.expectedGregorian": "Gregorian",
    "request.expectedHijri": "Hijri",
    "request.decision": "Message from the office",
    "request.history": "History",
    "request.corrects": "Corrects",
    "request.correctedBy": "Corrected by",
    "mine.title": "My requests",
    "mine.empty": "No requests yet.",
    "mine.more": "More",
    "respond.title": "Asked of you",
    "respond.by": "Answer by",
    "respond.message": "Your answer",
    "respond.file": "Attachment (PDF or JPG)",
    "respond.send": "Send the answer",
    "actions.followUp": "Follow up",
    "actions.followUpFrom": "A follow-up is possible from",
    "actions.cancel": "Cancel the request",
    "actions.cancelReason": "Why do you cancel it?",
    "actions.appeal": "Appeal the rejection",
    "actions.appealReason": "Why should the decision change?",
    "actions.correct": "File a corrected request",
    "actions.done": "Done",
    "track.title": "Track a request without signing in",
    "track.id": "National ID or iqama number",
    "track.send": "Send the verification code",
    "track.sent": "If the details match, a verification code is on its way by SMS.",
    "track.code": "Verification code",
    "track.show": "Show the request's status",
    "error.network": "The service cannot be reached; try again.",
    "error.signIn": "Sign in first.",
    "session.ended": "Your session has ended; sign in again.",
  },
};

const UNDECIDED = new Set([
  "REQUEST_STATUS_SUBMITTED",
  "REQUEST_STATUS_UNDER_REVIEW",
  "REQUEST_STATUS_NEEDS_MORE_INFO",
  "REQUEST_STATUS_RETURNED_BY_APPLICANT",
  "REQUEST_STATUS_TRANSFERRED",
]);

const state = {
  lang: localStorage.getItem("tawasul.lang") === "en" ? "en" : "ar",
  token: sessionStorage.getItem("tawasul.token") || "",
  who: sessionStorage.getItem("tawasul.who") || "",
  // The language the name was taken in at sign-in: it stays in it when the page switches.
  whoLang: sessionStorage.getItem("tawasul.whoLang") || "",
  role: sessionStorage.getItem("tawasul.role") || "",
  id: sessionStorage.getItem("tawasul.id") || "",
  catalog: null,
  idempotencyKey: newKey(),
  // The rejected request the new one corrects (SubmitRequest's cites_request_number); "" for none.
  cites: "",
  documents: new Map(), // document kind → [document ids]
  nextPage: "",
  request: null,
  // The request just filed whose confirmation the page shows; null once another form is shown.
  filed: null,
  // The answer being sent: its idempotency key and the file uploaded for it, kept until it
  // is taken, so that sending it again after a lost reply is the same answer.
  answer: null,
  // Where the page was when the gateway ended the session, and whose it was: the same person
  // signing in again comes back there; null otherwise.
  resume: null,
};

const $ = (selector, root = document) => root.querySelector(selector);
const t = (key) => TEXTS[state.lang][key] ?? TEXTS.ar[key] ?? key;

class ApiError extends Error {
  constructor(status, error) {
    super(error.message || String(status));
    this.status = status;
    this.code = error.code || "";
    this.fields = error.fields || {};
  }
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// Refusals come in the page's language, not the browser's.
const language = () => ({ "Accept-Language": state.lang });

async function api(method, path, body) {
  const token = state.token;
  const headers = { Accept: "application/json", ...language() };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { message: t("error.network") });
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw refused(response.status, data.error || { message: response.statusText }, token);
  return data;
}

// The error of a call the gateway refused. A 401 to the page's session (`token`, the one the
// call sent; not one signed out or replaced since) ends it: signed out as by the button, the
// sign-in is shown at once, and the error is the notice saying why, whatever view shows it.
function refused(status, error, token) {
  if (status !== 401 || !token || token !== state.token) return new ApiError(status, error);
  state.resume = { id: state.id, hash: location.hash };
  signOut(false);
  // The person's first button takes the focus from the control the view hid.
  route().then(() => $("#people button")?.focus());
  // route() empties the banner before its first wait: the notice comes after.
  banner(t("session.ended"));
  return new ApiError(401, { message: t("session.ended") });
}

// Uploads one file with its progress shown; resolves to docs' Document.
// An answer's JSON; {} for a body that is not (a proxy's HTML page for a 413 or a 502).
function parsed(text) {
  try {
    return JSON.parse(text || "{}");
  } catch {
    return {};
  }
}

function upload(file, { subService = "", kind = "", progress }) {
  const token = state.token;
  return new Promise((resolve, reject) => {
    const query = new URLSearchParams({
      filename: file.name,
      sub_service_code: subService,
      document_kind: kind,
    });
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/documents?${query}`);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("Accept-Language", state.lang);
    // No type is declared: the browser takes one from the file's name (a JPEG saved as
    // .png, a PDF it does not know), and docs, which reads the type from the bytes, would
    // refuse a file as not what its name says.
    progress.hidden = false;
    progress.value = 0;
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) progress.value = event.loaded / event.total;
    };
    xhr.onload = () => {
      const data = parsed(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300) {
        progress.value = 1;
        resolve(data.document);
      } else {
        reject(refused(xhr.status, data.error || { message: xhr.statusText }, token));
      }
    };
    xhr.onerror = xhr.onabort = xhr.ontimeout = () => reject(new ApiError(0, { message: t("error.network") }));
    xhr.send(file.slice(0, file.size, ""));
  });
}

// What went wrong, read out at once (role=alert); it replaces any notice.
function banner(message) {
  const el = $("#banner");
  el.textContent = message || "";
  el.hidden = !message;
  $("#notice").textContent = "";
}

// What went through at one's asking ("Done"): in a look of its own, not an error's, and read
// out when the screen reader is free (role=status); it replaces any error.
function notice(message) {
  banner("");
  $("#notice").textContent = message;
}

// Said by the page's status region (role=status): what a screen reader would not see happen.
function announce(message) {
  $("#status").textContent = message;
}

function clearErrors(root) {
  banner("");
  for (const el of root.querySelectorAll("[data-error-for]")) el.textContent = "";
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

// Puts each field's message next to its field; what has no place on the form goes on top.
function showError(root, error) {
  const loose = [];
  for (const [field, message] of Object.entries(error.fields || {})) {
    const slot = root.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
    if (slot) {
      slot.textContent = message;
      controlOf(slot)?.setAttribute("aria-invalid", "true");
    } else {
      loose.push(`${field}: ${message}`);
    }
  }
  // A refusal's message repeats its fields' own: the loose ones alone say it once.
  if (loose.length) banner(loose.join(" — "));
  else if (!Object.keys(error.fields || {}).length) banner(error.message);
  // The first field refused takes the focus, its message read with it (its description).
  root.querySelector('[aria-invalid="true"]')?.focus();
}

// A field's message slot: its input names it among its descriptions, and it is a live region,
// so that a message put in it (intake's refusal, an upload's) is read out where it appears.
function errorSlot(field, inputId) {
  const slot = Object.assign(document.createElement("p"), { className: "error", id: `${inputId}-error` });
  slot.dataset.errorFor = field;
  slot.setAttribute("aria-live", "polite");
  return slot;
}

// The lines under an input that a screen reader reads with it: its help, then its message.
function describe(input, lines) {
  input.setAttribute("aria-describedby", lines.map((line) => line.id).join(" "));
}

// The input a message's slot is about: the one before it, past the help, progress and "uploaded"
// lines drawn under it (a document row's); none for a slot under no input of its own.
function controlOf(slot) {
  let el = slot.previousElementSibling;
  while (el && (el.tagName === "PROGRESS" || (el.tagName === "P" && el.dataset.errorFor === undefined))) {
    el = el.previousElementSibling;
  }
  return el && ["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName) ? el : null;
}

function text(localized) {
  if (!localized) return "";
  return localized[state.lang] || localized.ar || "";
}

function dateText(display) {
  if (!display) return "";
  return (state.lang === "en" ? display.text_en : display.text_ar) || display.gregorian_date || "";
}

// Text someone wrote (a name, a reviewer's message): in its own direction, taken from its first
// letter, whatever the page's; an Arabic message in the English page reads right to left.
function written(value, tag = "span") {
  return Object.assign(document.createElement(tag), { textContent: value, dir: "auto" });
}

// The decision's reason, from the office's catalog, then the reviewer's own words; `none` when
// there is neither.
function showDecision(dd, r, none = "") {
  const reason = text(r.decision_reason);
  const message = r.decision_message || "";
  dd.replaceChildren(reason, reason && message ? " — " : "", message ? written(message) : "");
  if (!dd.textContent) dd.textContent = none;
}

// A finished request has no expected date: neither it nor its label is shown.
function expectedDate(dd, display) {
  dd.textContent = dateText(display);
  dd.hidden = dd.previousElementSibling.hidden = !display;
}

// Arabic agrees with the number (CLDR's plural forms, as Intl.PluralRules names them): one and
// two have words of their own, 3–10 take the plural, 11–99 and 100 the singular.
const DURATIONS = {
  ar: {
    working_days: { one: "يوم عمل واحد", two: "يوما عمل", few: "# أيام عمل", other: "# يوم عمل" },
    working_hours: { one: "ساعة عمل واحدة", two: "ساعتا عمل", few: "# ساعات عمل", other: "# ساعة عمل" },
  },
  en: {
    working_days: { one: "# working day", other: "# working days" },
    working_hours: { one: "# working hour", other: "# working hours" },
  },
};

// In Arabic-Indic digits in Arabic, as the page's dates and the notifications write them.
function duration(amount, unit) {
  const forms = DURATIONS[state.lang][unit] || { other: `# ${unit}` };
  const form = forms[new Intl.PluralRules(state.lang).select(amount)] || forms.other;
  const digits = new Intl.NumberFormat(state.lang === "ar" ? "ar-SA-u-nu-arab" : "en-GB");
  return form.replace("#", digits.format(amount));
}

function when(timestamp) {
  if (!timestamp) return "";
  // The office's time, as every date the server formats: not the zone of the device. Both
  // calendars, Hijri first, as the server's dates are (SPEC §6.1).
  const at = new Date(timestamp);
  const zone = "Asia/Riyadh";
  const day = (locale) =>
    at.toLocaleDateString(locale, { timeZone: zone, day: "numeric", month: "long", year: "numeric" });
  if (state.lang === "en") {
    const time = at.toLocaleTimeString("en-GB", { timeZone: zone, timeStyle: "short" });
    return `${day("en-GB-u-ca-islamic-umalqura")} (${day("en-GB-u-ca-gregory")}), ${time}`;
  }
  const time = at.toLocaleTimeString("ar-SA-u-nu-arab", { timeZone: zone, timeStyle: "short" });
  return `${day("ar-SA-u-ca-islamic-umalqura-nu-arab")} الموافق ${day("ar-SA-u-ca-gregory-nu-arab")}، ${time}`;
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.documentElement.dir = state.lang === "ar" ? "rtl" : "ltr";
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  const toggle = $("#language");
  toggle.textContent = t("language");
  toggle.lang = state.lang === "ar" ? "en" : "ar";
  retitle();
}

// The page's title names what it shows (a view's heading, or the confirmation of a request
// filed), then the service, so that each view has a title of its own in the page's language.
function pageTitle(heading) {
  return [heading, t("site")].filter(Boolean).join(" — ");
}

function retitle() {
  const view = $("main > section:not([hidden])");
  const heading = view && ($("#submitted:not([hidden]) h3", view) || $("h2", view));
  document.title = pageTitle(heading ? heading.textContent.replace(/\s+/g, " ").trim() : "");
}

function showAccount() {
  const who = $("#who");
  who.textContent = state.who;
  // Read in its own language (its letters' voice), whichever the page is in.
  who.lang = state.whoLang;
  $("#sign-out").hidden = !state.token;
  $("#nav-bulk").hidden = !(state.token && state.role === "establishment");
}

function signOut(reroute = true) {
  state.token = "";
  state.who = "";
  state.role = "";
  state.id = "";
  state.whoLang = "";
  for (const key of ["token", "who", "whoLang", "role", "id"]) sessionStorage.removeItem(`tawasul.${key}`);
  forget();
  showAccount();
  if (reroute) route();
}

// Whoever signs in next on this page sees nothing of the person who left: not the form or the
// correction they were filling, what they uploaded or were answering, their request filed or
// shown, their bulk upload's results, nor the address naming one of their requests.
function forget() {
  resetNew();
  state.filed = null;
  state.request = null;
  state.answer = null;
  $("#respond-form").reset();
  $("#bulk-form").reset();
  $("#bulk-summary").hidden = $("#bulk-results").hidden = true;
  $("#bulk-results tbody").replaceChildren();
  history.replaceState(null, "", "#new");
}

// The control pressed went with what it showed (the sign-in's person, an action's button hidden
// by its outcome): the view's heading takes the focus, so that the keyboard goes on from there
// rather than from the page's start.
function focusView() {
  if (document.activeElement === document.body) $("main > section:not([hidden]) h2")?.focus();
}

// A view opened from a link (the address changed, not the page loaded): its heading takes the
// focus, so that a screen reader is taken to what opened rather than left on the link pressed
// (WCAG 2.4.3); a view that put the focus on a control of its own keeps it there.
async function navigate() {
  const from = document.activeElement;
  await route();
  const at = document.activeElement;
  if (at === from || at === document.body) $("main > section:not([hidden]) h2")?.focus();
}

function show(view) {
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== `view-${view}`;
  }
  retitle();
}

// --- sign-in (development stand-in for the national single sign-on) ------------------------

async function showSignIn() {
  show("sign-in");
  const list = $("#people");
  list.replaceChildren();
  let people;
  try {
    people = (await api("GET", "/dev/people")).people || [];
  } catch {
    list.append(Object.assign(document.createElement("li"), { textContent: t("signIn.off") }));
    return;
  }
  for (const person of people) {
    const button = document.createElement("button");
    button.type = "button";
    const name = state.lang === "en" ? person.name_en : person.name_ar;
    button.append(written(name || person.id), ` — ${person.id} (${person.kind})`);
    button.dataset.id = person.id;
    button.addEventListener("click", async () => {
      try {
        const answer = await api("POST", "/dev/sign-in", { id: person.id });
        state.token = answer.token;
        state.who = name || person.id;
        state.whoLang = name ? state.lang : "";
        state.role = answer.role || "";
        state.id = person.id;
        sessionStorage.setItem("tawasul.token", state.token);
        sessionStorage.setItem("tawasul.who", state.who);
        sessionStorage.setItem("tawasul.whoLang", state.whoLang);
        sessionStorage.setItem("tawasul.role", state.role);
        sessionStorage.setItem("tawasul.id", state.id);
        // Signed in again after the session ended: back where it was, if the same person.
        if (state.resume?.id === state.id) history.replaceState(null, "", state.resume.hash);
        state.resume = null;
        showAccount();
        route().then(focusView);
      } catch (error) {
        banner(error.message);
      }
    });
    const item = document.createElement("li");
    item.append(button);
    list.append(item);
  }
}

// --- new request ---------------------------------------------------------------------------

// The catalog in the page's language. Asked for in one language, it may arrive once the page
// switched to the other: it is then not kept (the page asks for its own).
async function loadCatalog() {
  if (state.catalog?.locale === state.lang) return state.catalog;
  const locale = state.lang;
  const catalog = await api("GET", `/api/v1/catalog?locale=${locale}`);
  catalog.locale = locale;
  if (locale === state.lang) state.catalog = catalog;
  return catalog;
}

function option(value, label) {
  return Object.assign(document.createElement("option"), { value, textContent: label });
}

// `cites`: the number of a rejected request the new one corrects (#new/TW…), or "".
// `relabel`: the same form in the other language, what was entered in it kept.
async function showNew(cites = "", relabel = false) {
  show("new");
  // Relabelled, the confirmation of the request just filed is still what the page shows.
  if (!relabel) state.filed = null;
  $("#new-form").hidden = Boolean(state.filed);
  $("#submitted").hidden = !state.filed;
  if (state.filed) showFiled(state.filed);
  retitle();
  // The same form shown again (in the other language, or back from a look at the request it
  // corrects) keeps what was entered in it and its key: sent again after a lost answer, it is
  // the same request, not a second. Another one (a correction left, or another started) starts
  // empty: nothing of a rejected request goes unlinked into a new one.
  const again = relabel || cites === state.cites;
  if (!again) resetNew();
  // The server's messages were about the form as last sent (and in its language).
  clearErrors($("#new-form"));
  const catalog = await loadCatalog();
  // Asked for before the language switched: the form is drawn by the relabelling's call.
  if (catalog.locale !== state.lang) return;
  const departments = $("#department");
  const chosen = departments.value;
  departments.replaceChildren(option("", t("new.choose")));
  for (const d of catalog.departments || []) departments.append(option(d.code, d.name));
  departments.value = chosen;
  const kept = again ? entered() : null;
  fillSubServices();
  if (kept) restore(kept);
  // Prefilled when the correction starts, not each time the form is shown again: what the
  // beneficiary corrected is not put back.
  if (cites && cites !== state.cites) {
    const { request } = await api("GET", `/api/v1/requests/${encodeURIComponent(cites)}`);
    prefill(request);
    // The button that started it (the request's "File a corrected request") is gone.
    $("#department").focus();
  }
  correcting(cites);
}

// A new form: nothing entered, uploaded or linked, and a key of its own.
function resetNew() {
  $("#new-form").reset();
  state.documents = new Map();
  state.idempotencyKey = newKey();
  correcting("");
}

// The confirmation of a filed request, in the page's language.
function showFiled(request) {
  $("#submitted-number").textContent = request.request_number;
  $("#submitted-expected").textContent = dateText(request.expected_completion);
  $("#submitted-gregorian").textContent = request.expected_completion?.gregorian_date || "";
  $("#submitted-hijri").textContent = request.expected_completion?.hijri_date || "";
  $("#submitted-link").href = `#request/${request.request_number}`;
}

// A corrected request starts as the rejected one was filed: its sub-service, whom it is about,
// its fields and description, for the beneficiary to correct; documents are attached anew. Its
// department is the sub-service's: a transfer moved the request, not what it was filed as.
function prefill(r) {
  $("#department").value = subService(r.sub_service_code)?.department_code || r.department_code || "";
  fillSubServices();
  $("#sub-service").value = subService(r.sub_service_code) ? r.sub_service_code : "";
  $("#subject-id").value = r.subject_id && r.subject_id !== state.id ? r.subject_id : "";
  renderSubService();
  for (const input of document.querySelectorAll("#fields [data-field]")) {
    const value = r.fields?.[input.dataset.field];
    if (value) input.value = value;
  }
  markNeeded($("#fields"));
  $("#description").value = r.description || "";
}

// What the beneficiary entered in the sub-service's part of the form: its fields' values by
// name, and the documents uploaded so far.
function entered() {
  const values = new Map();
  for (const input of document.querySelectorAll("#fields [data-field]")) values.set(input.dataset.field, input.value);
  return { subService: $("#sub-service").value, values, documents: state.documents };
}

// Puts back what was entered into the form drawn again, if for the same sub-service (another
// one is another form). A file input cannot be refilled: each row says how many are in.
function restore(kept) {
  if ($("#sub-service").value !== kept.subService) return;
  for (const input of document.querySelectorAll("#fields [data-field]")) {
    if (kept.values.has(input.dataset.field)) input.value = kept.values.get(input.dataset.field);
  }
  markNeeded($("#fields"));
  state.documents = kept.documents;
  for (const [kind, ids] of state.documents) if (ids.length) showUploaded(kind, ids.length);
}

// The form says which request it corrects; without one, it corrects none.
function correcting(cites) {
  state.cites = cites;
  $("#correcting").hidden = !cites;
  const link = $("#correcting-number");
  link.textContent = cites;
  link.href = cites ? `#request/${encodeURIComponent(cites)}` : "";
}

// Filed on its own after all: the page's address no longer names the rejected request, so
// that a reload does not link it again.
function dropCorrection() {
  correcting("");
  history.replaceState(null, "", "#new");
}

function subService(code) {
  for (const d of state.catalog?.departments || []) {
    for (const s of d.sub_services || []) if (s.code === code) return s;
  }
  return null;
}

function fillSubServices() {
  const select = $("#sub-service");
  const chosen = select.value;
  select.replaceChildren(option("", t("new.choose")));
  const department = (state.catalog?.departments || []).find((d) => d.code === $("#department").value);
  for (const s of department?.sub_services || []) select.append(option(s.code, s.name));
  select.value = department?.sub_services?.some((s) => s.code === chosen) ? chosen : "";
  renderSubService();
}

function renderSubService() {
  const s = subService($("#sub-service").value);
  const fields = $("#fields");
  const documents = $("#documents");
  fields.replaceChildren();
  documents.replaceChildren();
  state.documents = new Map();
  $("#sub-service-about").textContent = s
    ? [s.description, s.sla_amount ? `${t("new.sla")}: ${duration(s.sla_amount, s.sla_unit)}` : "", s.fee_applies ? t("new.fee") : ""]
        .filter(Boolean)
        .join(" · ")
    : "";
  if (!s) return;
  for (const spec of s.fields || []) fields.append(...fieldInput(spec));
  fillSubject();
  markNeeded(fields);
  if ((s.documents || []).length) {
    documents.append(Object.assign(document.createElement("h3"), { textContent: t("new.documents") }));
  }
  for (const spec of s.documents || []) documents.append(...documentInput(s, spec));
}

// A field's or a document's label, marked when it must be given.
function labelText(text, required) {
  return required ? `${text} ${t("new.required")}` : text;
}

// Whether a field must be given with the form's values by name (intake's FieldSpec.needed): it
// is required, or its required_when's choice field holds one of the options named.
function needed(spec, values) {
  const rule = spec.required_when;
  return Boolean(spec.required || (rule && (rule.values || []).includes(values[rule.field])));
}

// The script a name must be typed in (FieldSpec.script): the input is in that language and
// direction, so that a phone offers that keyboard and the name reads as typed.
const SCRIPTS = {
  latin: { lang: "en", dir: "ltr", autocapitalize: "words" },
  arabic: { lang: "ar", dir: "rtl" },
};

function fieldInput(spec, prefix = "field") {
  const id = `${prefix}-${spec.name}`;
  const label = Object.assign(document.createElement("label"), { htmlFor: id });
  label.textContent = labelText(spec.label, spec.required);
  label.dataset.text = spec.label;
  let input;
  // A nationality is chosen from the countries intake names, as a choice is from its options.
  if (spec.type === "choice" || spec.choices?.length) {
    input = document.createElement("select");
    input.append(option("", t("new.choose")));
    for (const c of spec.choices || []) input.append(option(c.value, c.label));
  } else {
    input = document.createElement("input");
    if (spec.type === "date") input.type = "date";
    else if (/number|national_id|id_number/.test(spec.type)) input.inputMode = "numeric";
    if (spec.max_length) input.maxLength = spec.max_length;
    if (SCRIPTS[spec.script]) Object.assign(input, SCRIPTS[spec.script], { spellcheck: false });
    // Free text reads in the direction it is typed in, whatever the page's.
    else if (input.type === "text" && !input.inputMode) input.dir = "auto";
  }
  Object.assign(input, { id, name: spec.name, required: Boolean(spec.required) });
  input.dataset.field = spec.name;
  input.dataset.type = spec.type;
  if (spec.names_subject) input.dataset.namesSubject = "";
  // Required while an option of another field is chosen: markNeeded follows that field.
  if (spec.required_when) input.dataset.requiredWhen = JSON.stringify(spec.required_when);
  const error = errorSlot(`fields.${spec.name}`, id);
  // Which letters a name takes is said beside it, before intake refuses any other.
  const help = [spec.help, SCRIPTS[spec.script] ? t(`script.${spec.script}`) : ""]
    .filter(Boolean)
    .map((said, i) =>
      Object.assign(document.createElement("p"), { className: "help", id: `${id}-help-${i + 1}`, textContent: said }),
    );
  describe(input, [...help, error]);
  return [label, input, ...help, error];
}

// Marks the inputs of `root` that a chosen option needs (required_when) as required, and only
// those: intake refuses the form without them. An answer's blank input leaves the request's
// value (`filed`) as it is, which counts for the options chosen and needs no typing again.
function markNeeded(root, filed = {}) {
  const inputs = [...root.querySelectorAll("[data-field]")];
  const values = { ...filed };
  for (const input of inputs) if (input.value.trim()) values[input.dataset.field] = input.value.trim();
  for (const input of inputs) {
    if (input.dataset.requiredWhen === undefined) continue;
    const spec = { required_when: JSON.parse(input.dataset.requiredWhen) };
    input.required = needed(spec, values) && !filed[input.dataset.field];
    for (const label of input.labels) label.textContent = labelText(label.dataset.text, input.required);
  }
}

// The person the request is about: the ID typed above, else (but for an establishment, which
// always names its worker) the signed-in person's own.
function subjectId(typed, own, role) {
  return typed.trim() || (role === "establishment" ? "" : own);
}

// A field the catalog marks names_subject must be that person's ID (intake refuses any other):
// it follows the subject unless the person typed something else into it.
function filledValue(current, filled, subject) {
  return !current.trim() || current === filled ? subject : current;
}

// The first digits each kind of ID number starts with (intake's rule): a visitor's border
// number is never the signed-in citizen's own ID, so such a field is left for them to type.
const ID_FIRST_DIGITS = { national_id: "1", iqama_number: "2", id_number: "12", border_number: "34" };

function fits(type, id) {
  return !id || !(type in ID_FIRST_DIGITS) || ID_FIRST_DIGITS[type].includes(id[0]);
}

// What the request is about, as sent: the ID typed above, else another person's typed into a
// field that names them (a visitor's border number), else nobody named (the account holder).
function subjectToSend(typed, named, own) {
  const other = named.trim() === own ? "" : named.trim();
  return typed.trim() || other;
}

function namedSubject(form) {
  return form.querySelector("#fields [data-names-subject]")?.value || "";
}

function fillSubject() {
  const subject = subjectId($("#subject-id").value, state.id, state.role);
  for (const input of document.querySelectorAll("#fields [data-names-subject]")) {
    const value = fits(input.dataset.type, subject) ? subject : "";
    input.value = filledValue(input.value, input.dataset.filled || "", value);
    input.dataset.filled = value;
  }
}

function documentInput(s, spec) {
  const id = `document-${spec.kind}`;
  const label = Object.assign(document.createElement("label"), { htmlFor: id, id: `${id}-label` });
  label.textContent = labelText(spec.label, spec.required);
  const input = Object.assign(document.createElement("input"), {
    id,
    type: "file",
    accept: (spec.media_types || []).join(","),
    multiple: (spec.max_count || 1) > 1,
  });
  input.dataset.kind = spec.kind;
  // Named by the document's label: a bar alone says nothing of what is being sent.
  const progress = Object.assign(document.createElement("progress"), { max: 1, value: 0, hidden: true });
  progress.setAttribute("aria-labelledby", label.id);
  progress.dataset.kind = spec.kind;
  const count = Object.assign(document.createElement("p"), { className: "help", id: `${id}-uploaded`, hidden: true });
  count.dataset.uploadedFor = spec.kind;
  const error = errorSlot(`documents.${spec.kind}`, id);
  describe(input, [count, error]);
  input.addEventListener("change", async () => {
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    progress.title = "";
    count.hidden = true;
    const ids = [];
    state.documents.set(spec.kind, ids);
    for (const file of input.files) {
      try {
        const stored = await upload(file, { subService: s.code, kind: spec.kind, progress });
        ids.push(stored.document_id);
      } catch (failure) {
        // The session ended: the sign-in says so, and this form is gone with it.
        if (failure.status === 401) return;
        progress.hidden = true;
        error.textContent = Object.values(failure.fields || {}).join(" — ") || failure.message;
        input.setAttribute("aria-invalid", "true");
      }
    }
    // Said once every file chosen is in, so that nobody sends the form with one still going;
    // by the row drawn now (the language may have switched meanwhile), if these files are
    // still the form's.
    const current = state.documents.get(spec.kind) === ids;
    if (ids.length && ids.length === input.files.length && current) announce(showUploaded(spec.kind, ids.length));
  });
  return [label, input, progress, count, error];
}

// A document row whose files are all in: its progress full, and how many. Returns what it says,
// with the document it is about ("" without the row).
function showUploaded(kind, count) {
  const progress = $(`#documents progress[data-kind="${CSS.escape(kind)}"]`);
  const said = $(`#documents [data-uploaded-for="${CSS.escape(kind)}"]`);
  if (!progress || !said) return "";
  Object.assign(progress, { hidden: false, value: 1, title: t("new.uploaded") });
  // In Arabic-Indic digits in Arabic, as duration() writes its numbers.
  said.textContent = `${t("new.uploaded")}: ${count.toLocaleString(state.lang === "ar" ? "ar-SA-u-nu-arab" : "en-GB")}`;
  said.hidden = false;
  return `${$(`#documents label[for="document-${CSS.escape(kind)}"]`)?.textContent || ""} — ${said.textContent}`;
}

async function submitNew(event) {
  event.preventDefault();
  const form = $("#new-form");
  clearErrors(form);
  const fields = {};
  for (const input of form.querySelectorAll("[data-field]")) {
    if (input.value.trim()) fields[input.dataset.field] = input.value.trim();
  }
  const kinds = [...state.documents].flatMap(([kind, ids]) => ids.map(() => kind));
  const body = {
    idempotency_key: state.idempotencyKey,
    sub_service_code: $("#sub-service").value,
    description: $("#description").value,
    subject_id: subjectToSend($("#subject-id").value, namedSubject(form), state.id),
    fields,
    contact: { mobile: $("#mobile").value.trim(), email: $("#email").value.trim(), locale: state.lang },
    document_ids: [...state.documents.values()].flat(),
    cites_request_number: state.cites,
  };
  const button = $("#submit");
  button.disabled = true;
  button.textContent = t("new.sending");
  try {
    const { request } = await api("POST", "/api/v1/requests", body);
    form.hidden = true;
    $("#submitted").hidden = false;
    state.filed = request;
    showFiled(request);
    // The form is a new one now: what is filed from it next is another request.
    resetNew();
    dropCorrection();
    retitle();
    // The button pressed is gone: the confirmation takes the focus, its number said after it.
    $("#submitted-title").focus();
    announce(`${t("request.number")}: ${request.request_number}`);
  } catch (error) {
    showError(form, atKinds(error, kinds));
  } finally {
    button.disabled = false;
    button.textContent = t("new.submit");
  }
  // Disabled while sending, the button lost the focus: a refusal with no field of its own to
  // focus gives it back, not to the page's start.
  if (!form.hidden && document.activeElement === document.body) button.focus();
}

// Intake names a document by its place in document_ids (`kinds`' order); the page shows what
// it says next to the input of that document's kind.
function atKinds(error, kinds) {
  const fields = {};
  for (const [field, message] of Object.entries(error.fields)) {
    const kind = kinds[/^document_ids\[(\d+)\]$/.exec(field)?.[1]];
    const slot = kind ? `documents.${kind}` : field;
    fields[slot] = fields[slot] ? `${fields[slot]} — ${message}` : message;
  }
  error.fields = fields;
  return error;
}

// --- my requests ---------------------------------------------------------------------------

async function showMine(more = false) {
  show("mine");
  const list = $("#mine-list");
  if (!more) {
    list.replaceChildren();
    state.nextPage = "";
  }
  const query = new URLSearchParams({ page_size: "20", page_token: state.nextPage });
  const page = await api("GET", `/api/v1/requests?${query}`);
  const shown = list.children.length;
  for (const r of page.requests || []) {
    const link = Object.assign(document.createElement("a"), { href: `#request/${r.request_number}` });
    link.append(
      Object.assign(document.createElement("strong"), { textContent: r.request_number, dir: "ltr" }),
      ` — ${text(r.status_label)} — ${text(r.department_name)} — ${when(r.submitted_at)}`,
    );
    const item = document.createElement("li");
    item.dataset.number = r.request_number;
    item.append(link);
    list.append(item);
  }
  state.nextPage = page.next_page_token || "";
  $("#mine-more").hidden = !state.nextPage;
  $("#mine-empty").hidden = list.children.length > 0;
  // "More" pressed went with the last page: the first request it brought takes the focus, not
  // the page's start.
  if (more && $("#mine-more").hidden) list.children[shown]?.querySelector("a")?.focus();
}

// --- one request ---------------------------------------------------------------------------

async function showRequest(number) {
  show("request");
  const { request } = await api("GET", `/api/v1/requests/${encodeURIComponent(number)}`);
  renderRequest(request);
}

function renderRequest(r) {
  // Another request's answer in the making is not this one's.
  if (state.request?.request_number !== r.request_number) state.answer = null;
  state.request = r;
  $("#request-number").textContent = r.request_number;
  retitle();
  $("#request-status").textContent = text(r.status_label);
  $("#request-department").textContent = text(r.department_name);
  expectedDate($("#request-expected"), r.expected_completion);
  showDecision($("#request-decision"), r, "—");
  requestLinks($("#request-corrects"), r.cites_request_number ? [r.cites_request_number] : []);
  requestLinks($("#request-corrected-by"), r.cited_by_request_numbers || []);
  const history = $("#request-history");
  history.replaceChildren();
  for (const step of r.history || []) {
    const item = document.createElement("li");
    const said = [when(step.at), text(step.status_label)].filter(Boolean).join(" — ");
    item.append(said, said && step.message ? " — " : "", step.message ? written(step.message) : "");
    history.append(item);
  }
  const status = r.status || "";
  const needsInfo = status === "REQUEST_STATUS_NEEDS_MORE_INFO";
  $("#request-missing").hidden = !needsInfo;
  if (needsInfo) {
    const missing = $("#missing-list");
    missing.replaceChildren();
    for (const m of r.missing || []) {
      missing.append(written(m.description || m.name, "li"));
    }
    $("#respond-by").textContent = dateText(r.respond_by);
    // The catalog unreachable, the answer's own inputs are missing: the beneficiary is told.
    askedInputs(r).catch((error) => showError($("#view-request"), error));
  }
  const followFrom = r.follow_up_from?.at ? new Date(r.follow_up_from.at) : null;
  const canFollow = UNDECIDED.has(status) && !needsInfo;
  $("#follow-up").hidden = !canFollow;
  $("#follow-up").disabled = Boolean(followFrom && followFrom > new Date());
  $("#follow-up-from").textContent =
    canFollow && followFrom && followFrom > new Date() ? `${t("actions.followUpFrom")} ${dateText(r.follow_up_from)}` : "";
  $("#cancel").hidden = !UNDECIDED.has(status);
  const appealUntil = r.appeal_until?.at ? new Date(r.appeal_until.at) : null;
  $("#appeal").hidden = !(status === "REQUEST_STATUS_REJECTED" && !r.appealed && appealUntil && appealUntil > new Date());
  // A rejected request is not reopened: a new one, linked to it, brings the corrections.
  $("#correct").hidden = status !== "REQUEST_STATUS_REJECTED";
}

// The requests a request is linked to, each a link to its own view; the row is hidden without.
function requestLinks(dd, numbers) {
  dd.replaceChildren();
  numbers.forEach((number, i) => {
    if (i) dd.append(state.lang === "ar" ? "، " : ", ");
    const href = `#request/${encodeURIComponent(number)}`;
    dd.append(Object.assign(document.createElement("a"), { href, textContent: number, dir: "ltr" }));
  });
  dd.hidden = dd.previousElementSibling.hidden = !numbers.length;
}

// Null once the service took the action; its refusal, shown, otherwise.
async function act(path, body, kinds = []) {
  clearErrors($("#view-request"));
  try {
    const { request } = await api("POST", `/api/v1/requests/${encodeURIComponent(state.request.request_number)}/${path}`, body);
    renderRequest(request);
    notice(t("actions.done"));
    focusView();
    return null;
  } catch (error) {
    showError($("#view-request"), atKinds(error, kinds));
    return error;
  }
}

// What the reviewer asked for by name, as the form's inputs: a field of the sub-service as
// its input, a document as an upload of its kind (SPEC §6.3); the rest is for the message.
async function askedInputs(r) {
  const asked = $("#respond-asked");
  asked.replaceChildren();
  await loadCatalog();
  const s = subService(r.sub_service_code);
  if (!s || state.request !== r) return;
  // A field asked for twice is one input; a kind asked for twice, one file input each.
  const fields = new Set();
  const kinds = new Map();
  for (const m of r.missing || []) {
    const field = m.kind === "field" && (s.fields || []).find((f) => f.name === m.name);
    const kind = m.kind === "document" && (s.documents || []).find((d) => d.kind === m.name);
    if (field && !fields.has(field.name)) asked.append(...fieldInput({ ...field, required: false }, "answer"));
    if (field) fields.add(field.name);
    if (kind) {
      const nth = (kinds.get(kind.kind) || 0) + 1;
      kinds.set(kind.kind, nth);
      asked.append(...askedDocument(kind, nth));
    }
  }
  markNeeded(asked, r.fields || {});
}

function askedDocument(spec, nth = 1) {
  const id = nth === 1 ? `answer-document-${spec.kind}` : `answer-document-${spec.kind}-${nth}`;
  const label = Object.assign(document.createElement("label"), { htmlFor: id, id: `${id}-label`, textContent: spec.label });
  const input = Object.assign(document.createElement("input"), {
    id,
    type: "file",
    accept: (spec.media_types || []).join(","),
  });
  input.dataset.kind = spec.kind;
  const progress = Object.assign(document.createElement("progress"), { max: 1, value: 0, hidden: true });
  progress.setAttribute("aria-labelledby", label.id);
  const error = errorSlot(`documents.${spec.kind}`, id);
  describe(input, [error]);
  return [label, input, progress, error];
}

async function respond(event) {
  event.preventDefault();
  const form = $("#respond-form");
  clearErrors(form);
  state.answer ??= { key: newKey(), uploads: new Map() };
  // Each document asked for as its kind, then any other attachment; each file uploaded once
  // however often the answer is sent.
  const documentIds = [];
  const kinds = [];
  for (const input of form.querySelectorAll('input[type="file"]')) {
    const file = input.files[0];
    if (!file) continue;
    const kind = input.dataset.kind || "";
    let stored = state.answer.uploads.get(input.id);
    if (stored?.file !== file) {
      try {
        const subService = kind ? state.request.sub_service_code : "";
        const document = await upload(file, { subService, kind, progress: input.nextElementSibling });
        stored = { file, documentId: document.document_id };
        state.answer.uploads.set(input.id, stored);
      } catch (error) {
        // The session ended: the sign-in says so, and this answer is gone with it.
        if (error.status === 401) return;
        const slot = kind ? `documents.${kind}` : "document_ids";
        showError(form, { message: error.message, fields: { [slot]: Object.values(error.fields).join(" — ") || error.message } });
        return;
      }
    }
    documentIds.push(stored.documentId);
    kinds.push(kind);
  }
  const fields = {};
  for (const input of form.querySelectorAll("[data-field]")) {
    if (input.value.trim()) fields[input.dataset.field] = input.value.trim();
  }
  const body = {
    idempotency_key: state.answer.key,
    message: $("#respond-message").value,
    fields,
    document_ids: documentIds,
  };
  // Refused or unanswered, the answer stays in the form to be corrected or sent again; but
  // when its key was taken, the answer sent before it (its reply lost) stands: shown as taken.
  const refused = await act("respond", body, kinds);
  const taken = refused?.fields?.idempotency_key;
  if (!refused || taken) {
    state.answer = null;
    form.reset();
  }
  if (taken) {
    await showRequest(state.request.request_number);
    banner(taken);
  }
}

// --- the establishment portal: bulk filing from a CSV file -------------------------------

// A row's field errors when the server named fields, its message otherwise.
function rowProblems(error) {
  const fields = Object.entries(error.fields || {});
  return fields.length ? fields.map(([field, message]) => `${field}: ${message}`).join(" — ") : error.message || "";
}

async function fileInBulk(event) {
  event.preventDefault();
  const form = $("#bulk-form");
  clearErrors(form);
  const file = $("#bulk-file").files[0];
  if (!file) return;
  const token = state.token;
  const headers = {
    Accept: "application/json",
    "Content-Type": "text/csv",
    Authorization: `Bearer ${token}`,
    ...language(),
  };
  let response;
  try {
    response = await fetch("/api/v1/establishment/requests:bulk", { method: "POST", headers, body: file });
  } catch {
    banner(t("error.network"));
    return;
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    showError(form, refused(response.status, data.error || { message: response.statusText }, token));
    return;
  }
  $("#bulk-summary").hidden = false;
  $("#bulk-summary").textContent = [
    `${t("bulk.filed")}: ${data.filed}`,
    data.already_filed ? `${t("bulk.alreadyFiled")}: ${data.already_filed}` : "",
    `${t("bulk.refused")}: ${data.refused}`,
  ]
    .filter(Boolean)
    .join(" · ");
  announce($("#bulk-summary").textContent);
  const body = $("#bulk-results tbody");
  body.replaceChildren();
  for (const result of data.results || []) {
    const row = document.createElement("tr");
    row.dataset.row = result.row;
    const outcome = result.request_number
      ? Object.assign(document.createElement("strong"), { textContent: result.request_number, dir: "ltr" })
      : Object.assign(document.createElement("span"), {
          className: "error",
          textContent: rowProblems(result.error || {}),
        });
    const cells = [Object.assign(document.createElement("td"), { textContent: result.row }), document.createElement("td")];
    cells[1].append(outcome);
    row.append(...cells);
    body.append(row);
  }
  $("#bulk-results").hidden = false;
}

// --- tracking without sign-in --------------------------------------------------------------

async function startTracking(event) {
  event.preventDefault();
  const form = $("#track-form");
  clearErrors(form);
  try {
    await api("POST", "/api/v1/tracking/start", trackingBody());
    $("#track-code-form").hidden = false;
    $("#track-code").focus();
  } catch (error) {
    showError(form, error);
  }
}

function trackingBody() {
  return {
    request_number: $("#track-number").value.trim(),
    id_number: $("#track-id").value.trim(),
    mobile: $("#track-mobile").value.trim(),
  };
}

async function track(event) {
  event.preventDefault();
  const form = $("#track-code-form");
  clearErrors(form);
  try {
    const { request } = await api("POST", "/api/v1/tracking/track", { ...trackingBody(), code: $("#track-code").value.trim() });
    $("#track-result").hidden = false;
    $("#track-status").textContent = text(request.status_label);
    expectedDate($("#track-expected"), request.expected_completion);
    const decided = $("#track-decision");
    showDecision(decided, request);
    decided.hidden = decided.previousElementSibling.hidden = !decided.textContent;
    announce(`${t("request.status")}: ${text(request.status_label)}`);
  } catch (error) {
    showError(form, error);
  }
}

// --- routing -------------------------------------------------------------------------------

// `relabel`: the view shown again in the other language, not a view opened anew.
async function route({ relabel = false } = {}) {
  banner("");
  const [view, argument] = (location.hash.slice(1) || "new").split("/");
  try {
    if (view === "track") {
      show("track");
      return;
    }
    if (!state.token) {
      await showSignIn();
      return;
    }
    if (view === "mine") await showMine();
    else if (view === "bulk") show("bulk");
    else if (view === "request" && argument) await showRequest(decodeURIComponent(argument));
    else await showNew(view === "new" && argument ? decodeURIComponent(argument) : "", relabel);
  } catch (error) {
    banner(error.message);
  }
}

function start() {
  applyLanguage();
  showAccount();
  $("#language").addEventListener("click", () => {
    state.lang = state.lang === "ar" ? "en" : "ar";
    localStorage.setItem("tawasul.lang", state.lang);
    applyLanguage();
    route({ relabel: true });
  });
  $("#sign-out").addEventListener("click", () => signOut());
  // "New request" where the page already is (#new, or no address: a request's confirmation,
  // which is only ever at #new, or the form itself) starts an empty form, though no hashchange
  // routes. From another view it comes back to the form as it was left, a draft kept (or a
  // correction left behind: showNew's rules), so a click on the way back loses nothing typed.
  $("#nav-new").addEventListener("click", (event) => {
    if (location.hash !== "#new" && location.hash !== "") return;
    event.preventDefault();
    resetNew();
    navigate();
  });
  $("#department").addEventListener("change", fillSubServices);
  $("#sub-service").addEventListener("change", renderSubService);
  $("#subject-id").addEventListener("input", fillSubject);
  // An option chosen or typed over makes the fields it needs required, or no longer.
  $("#fields").addEventListener("change", () => markNeeded($("#fields")));
  $("#respond-asked").addEventListener("change", () => markNeeded($("#respond-asked"), state.request?.fields || {}));
  $("#new-form").addEventListener("submit", submitNew);
  $("#mine-more").addEventListener("click", () => showMine(true).catch((e) => banner(e.message)));
  $("#respond-form").addEventListener("submit", respond);
  $("#follow-up").addEventListener("click", () => act("follow-up", { message: "" }));
  $("#cancel").addEventListener("click", () => {
    const reason = prompt(t("actions.cancelReason"));
    if (reason !== null) act("cancel", { reason });
  });
  $("#appeal").addEventListener("click", () => {
    const reason = prompt(t("actions.appealReason"));
    if (reason !== null) act("appeal", { reason });
  });
  $("#correct").addEventListener("click", () => {
    location.hash = `#new/${encodeURIComponent(state.request.request_number)}`;
  });
  $("#correcting-drop").addEventListener("click", () => {
    dropCorrection();
    // The card holding the button is hidden: the form's first input takes the focus.
    $("#department").focus();
  });
  $("#bulk-form").addEventListener("submit", fileInBulk);
  $("#track-form").addEventListener("submit", startTracking);
  $("#track-code-form").addEventListener("submit", track);
  window.addEventListener("hashchange", navigate);
  // The first view shown leaves the focus where the browser puts it on a page's load.
  route();
}

start();
