// tests/support/tls_support.hpp — TLS for tests: a self-signed certificate made at run time with
// OpenSSL (TestCert, test_cert()), a server context that presents it (server_tls()) and a client
// context that trusts it and checks the host name (client_tls()).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>
#include <utility>

#include "concur/aio/streams.hpp"

namespace concur::testing {

// TestCert: a self-signed certificate for "localhost" / 127.0.0.1 / ::1 (valid from yesterday to
// tomorrow) and its key, as PEM, made with OpenSSL at run time.
struct TestCert {
  std::string cert;
  std::string key;
};

inline std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

inline TestCert make_test_cert() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -86400);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  for (const auto& [nid, value] :
       {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"},
        std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  BIO* cert_bio = BIO_new(BIO_s_mem());
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, x);
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  TestCert out{bio_text(cert_bio), bio_text(key_bio)};
  BIO_free(cert_bio);
  BIO_free(key_bio);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

inline const TestCert& test_cert() {
  static const TestCert cert = make_test_cert();
  return cert;
}

inline concur::aio::SslContext server_tls() {
  concur::aio::SslContext ctx =
      concur::aio::SslContext::create_default_context(concur::aio::SslPurpose::kClientAuth);
  ctx.load_cert_chain_pem(test_cert().cert, test_cert().key);
  return ctx;
}

// client_tls(): verifies the server against the test certificate (and checks the host name).
inline concur::aio::SslContext client_tls() {
  concur::aio::SslContext ctx = concur::aio::SslContext::create_default_context();
  ctx.load_verify_pem(test_cert().cert);
  return ctx;
}

}  // namespace concur::testing
